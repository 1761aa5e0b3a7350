//! The intrusion test (CL-SR Table 2): for a sample of latents, show its top-activating
//! passages plus one passage that does not activate it, shuffled; a [`Judge`] picks the
//! intruder. A latent whose top passages share something recognisable lets the judge find
//! the odd one out; chance is `1 / (top + 1)`.

use std::collections::{HashMap, HashSet};

use latent_terms_encoders::Embeddings;
use latent_terms_sparse_index::{Analyzer, Index};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The seeded generator of the intrusion test's shuffles and samples (reproducible).
pub use latent_terms_sparse_index::SplitMix64;

/// One question: candidates (external document ids) and which of them is the intruder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrusionItem {
    /// The latent.
    pub latent: u32,
    /// Top-activating documents and the intruder, shuffled.
    pub candidates: Vec<String>,
    /// Position of the intruder in `candidates`.
    pub intruder: usize,
}

/// How to draw the questions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrusionOptions {
    /// Latents sampled (fewer when fewer qualify).
    pub latents: usize,
    /// Top-activating documents per question (CL-SR: 9).
    pub top: usize,
    /// Seed of the latent sample, the intruders and the shuffles.
    pub seed: u64,
}

impl Default for IntrusionOptions {
    fn default() -> Self {
        IntrusionOptions {
            latents: 200,
            top: 9,
            seed: 1,
        }
    }
}

/// Draws intrusion questions from a latent-term index: latents active in at least `top`
/// documents (and not in all of them) are sampled without replacement; each question is
/// the latent's `top` highest-activation documents plus one uniformly drawn live
/// document in which the latent is inactive, shuffled.
pub fn intrusion_items(index: &Index, options: &IntrusionOptions) -> Result<Vec<IntrusionItem>> {
    if options.top == 0 {
        return Err(Error::Invalid("intrusion test needs top ≥ 1".into()));
    }
    let live: Vec<u32> = (0..index.max_doc())
        .filter(|&d| !index.is_deleted(d))
        .collect();
    let mut eligible = Vec::new();
    for latent in index.term_ids() {
        let postings = index.postings(latent)?;
        if postings.len() >= options.top && postings.len() < live.len() {
            eligible.push((latent, postings));
        }
    }
    let mut rng = SplitMix64::new(options.seed);
    rng.shuffle(&mut eligible);
    eligible.truncate(options.latents);
    eligible.sort_by_key(|e| e.0);
    let mut items = Vec::with_capacity(eligible.len());
    for (latent, mut postings) in eligible {
        let active: HashSet<u32> = postings.iter().map(|p| p.0).collect();
        postings.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut docs: Vec<u32> = postings.iter().take(options.top).map(|p| p.0).collect();
        // Rejection sampling; the inactive share is at least 1/live.len().
        let mut intruder = None;
        for _ in 0..(64 * live.len()).max(1024) {
            let d = live[rng.below(live.len())];
            if !active.contains(&d) {
                intruder = Some(d);
                break;
            }
        }
        let Some(intruder) = intruder else {
            continue;
        };
        docs.push(intruder);
        rng.shuffle(&mut docs);
        let position = docs.iter().position(|&d| d == intruder).unwrap_or_default();
        items.push(IntrusionItem {
            latent,
            candidates: docs
                .iter()
                .map(|&d| index.external_id(d).unwrap_or_default().to_owned())
                .collect(),
            intruder: position,
        });
    }
    Ok(items)
}

/// Decides which candidate is the intruder.
pub trait Judge {
    /// A short name for reports.
    fn name(&self) -> String;
    /// The position of the candidate judged the intruder.
    fn pick_intruder(&self, latent: u32, candidates: &[String]) -> Result<usize>;
}

/// The baseline judge without an LLM: in the retriever's own embedding space, the
/// candidate least similar (cosine) to the mean of the other candidates is the intruder.
pub struct CentroidJudge<'a> {
    embeddings: &'a Embeddings,
    rows: HashMap<&'a str, usize>,
}

impl<'a> CentroidJudge<'a> {
    /// A judge over document embeddings.
    pub fn new(embeddings: &'a Embeddings) -> Self {
        let rows = embeddings
            .ids()
            .iter()
            .enumerate()
            .map(|(i, d)| (d.as_str(), i))
            .collect();
        CentroidJudge { embeddings, rows }
    }

    fn unit(&self, id: &str) -> Result<Vec<f64>> {
        let &r = self
            .rows
            .get(id)
            .ok_or_else(|| Error::Invalid(format!("document {id:?} has no embedding")))?;
        let dim = self.embeddings.dim();
        let row = &self.embeddings.data()[r * dim..(r + 1) * dim];
        let norm = row
            .iter()
            .map(|&v| f64::from(v).powi(2))
            .sum::<f64>()
            .sqrt();
        let s = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        Ok(row.iter().map(|&v| f64::from(v) * s).collect())
    }
}

impl Judge for CentroidJudge<'_> {
    fn name(&self) -> String {
        "centroid (retriever embeddings, cosine)".into()
    }

    fn pick_intruder(&self, _latent: u32, candidates: &[String]) -> Result<usize> {
        let units = candidates
            .iter()
            .map(|c| self.unit(c))
            .collect::<Result<Vec<_>>>()?;
        let dim = self.embeddings.dim();
        let mut sum = vec![0f64; dim];
        for u in &units {
            for (s, v) in sum.iter_mut().zip(u) {
                *s += v;
            }
        }
        let mut best = (f64::INFINITY, 0);
        for (i, u) in units.iter().enumerate() {
            let rest: Vec<f64> = sum.iter().zip(u).map(|(s, v)| s - v).collect();
            let norm = rest.iter().map(|v| v * v).sum::<f64>().sqrt();
            let cos = if norm > 0.0 {
                rest.iter().zip(u).map(|(a, b)| a * b).sum::<f64>() / norm
            } else {
                0.0
            };
            if cos < best.0 {
                best = (cos, i);
            }
        }
        Ok(best.1)
    }
}

/// A judge that never sees the retriever: each passage is its set of analysed words
/// (Lucene-like English analysis, stemmed) weighted by IDF over the corpus, and the
/// passage least similar (cosine) to the sum of the others is the intruder.
pub struct LexicalJudge {
    docs: HashMap<String, Vec<(u32, f64)>>,
}

impl LexicalJudge {
    /// Learns IDFs from `(document id, text)` pairs and keeps each document's vector.
    pub fn new(docs: impl IntoIterator<Item = (String, String)>) -> Self {
        let analyzer = Analyzer::english();
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut sets: Vec<(String, Vec<u32>)> = Vec::new();
        let mut df: Vec<u64> = Vec::new();
        for (id, text) in docs {
            let mut set: Vec<u32> = Vec::new();
            analyzer.for_each_term(&text, |t| {
                let next = ids.len() as u32;
                let w = *ids.entry(t.to_owned()).or_insert(next);
                if w as usize == df.len() {
                    df.push(0);
                }
                set.push(w);
            });
            set.sort_unstable();
            set.dedup();
            for &w in &set {
                df[w as usize] += 1;
            }
            sets.push((id, set));
        }
        let n = sets.len() as f64;
        let docs = sets
            .into_iter()
            .map(|(id, set)| {
                let mut v: Vec<(u32, f64)> = set
                    .into_iter()
                    .map(|w| (w, (1.0 + n / df[w as usize] as f64).ln()))
                    .collect();
                let norm = v.iter().map(|x| x.1 * x.1).sum::<f64>().sqrt();
                if norm > 0.0 {
                    v.iter_mut().for_each(|x| x.1 /= norm);
                }
                (id, v)
            })
            .collect();
        LexicalJudge { docs }
    }
}

impl Judge for LexicalJudge {
    fn name(&self) -> String {
        "lexical (IDF-weighted words, cosine)".into()
    }

    fn pick_intruder(&self, _latent: u32, candidates: &[String]) -> Result<usize> {
        let vectors = candidates
            .iter()
            .map(|c| {
                self.docs
                    .get(c)
                    .ok_or_else(|| Error::Invalid(format!("document {c:?} has no text")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut sum: HashMap<u32, f64> = HashMap::new();
        for v in &vectors {
            for &(w, x) in v.iter() {
                *sum.entry(w).or_default() += x;
            }
        }
        let mut best = (f64::INFINITY, 0);
        for (i, v) in vectors.iter().enumerate() {
            let own: HashMap<u32, f64> = v.iter().copied().collect();
            let (mut dot, mut norm) = (0f64, 0f64);
            for (w, s) in &sum {
                let rest = s - own.get(w).copied().unwrap_or(0.0);
                norm += rest * rest;
                dot += rest * own.get(w).copied().unwrap_or(0.0);
            }
            let cos = if norm > 0.0 { dot / norm.sqrt() } else { 0.0 };
            if cos < best.0 {
                best = (cos, i);
            }
        }
        Ok(best.1)
    }
}

/// Accuracy of one judge on a set of questions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntrusionResult {
    /// The judge.
    pub judge: String,
    /// Questions asked.
    pub items: usize,
    /// Questions the judge answered right.
    pub correct: usize,
    /// `correct / items`.
    pub accuracy: f64,
    /// Chance level, `1 / candidates`.
    pub chance: f64,
}

/// Asks `judge` every question.
pub fn run_intrusion(items: &[IntrusionItem], judge: &dyn Judge) -> Result<IntrusionResult> {
    let mut correct = 0;
    for item in items {
        if judge.pick_intruder(item.latent, &item.candidates)? == item.intruder {
            correct += 1;
        }
    }
    let n = items.len();
    let per = items.first().map_or(0, |i| i.candidates.len());
    Ok(IntrusionResult {
        judge: judge.name(),
        items: n,
        correct,
        accuracy: if n > 0 {
            correct as f64 / n as f64
        } else {
            0.0
        },
        chance: if per > 0 { 1.0 / per as f64 } else { 0.0 },
    })
}

/// The control: the same questions with every latent's top documents replaced by random
/// live documents, so no candidate is special and a judge should score chance.
pub fn random_items(index: &Index, like: &[IntrusionItem], seed: u64) -> Vec<IntrusionItem> {
    let live: Vec<u32> = (0..index.max_doc())
        .filter(|&d| !index.is_deleted(d))
        .collect();
    let mut rng = SplitMix64::new(seed);
    like.iter()
        .map(|item| {
            let mut picked: Vec<u32> = Vec::new();
            while picked.len() < item.candidates.len().min(live.len()) {
                let d = live[rng.below(live.len())];
                if !picked.contains(&d) {
                    picked.push(d);
                }
            }
            IntrusionItem {
                latent: item.latent,
                candidates: picked
                    .iter()
                    .map(|&d| index.external_id(d).unwrap_or_default().to_owned())
                    .collect(),
                intruder: item.intruder.min(picked.len().saturating_sub(1)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::LatentIndex;
    use latent_terms_sae::SparseCode;

    /// 30 documents: 0–14 on latent 1 (embedding near +x), 15–29 on latent 2 (near +y).
    fn fixture() -> (LatentIndex, Embeddings) {
        let mut ids = Vec::new();
        let mut codes = Vec::new();
        let mut data = Vec::new();
        for i in 0..30u32 {
            ids.push(format!("d{i}"));
            let wobble = (i % 5) as f32 * 0.05;
            let (latent, row) = if i < 15 {
                (1, [1.0, wobble])
            } else {
                (2, [wobble, 1.0])
            };
            codes.push(SparseCode {
                indices: vec![latent],
                values: vec![1.0 + i as f32 / 100.0],
            });
            data.extend_from_slice(&row);
        }
        let index = LatentIndex::build(&ids, &codes, None).unwrap();
        (index, Embeddings::new(ids, 2, data).unwrap())
    }

    #[test]
    fn centroid_judge_finds_intruders_of_coherent_latents() {
        let (index, emb) = fixture();
        let opts = IntrusionOptions {
            latents: 10,
            top: 9,
            seed: 3,
        };
        let items = intrusion_items(index.index(), &opts).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items, intrusion_items(index.index(), &opts).unwrap());
        for item in &items {
            assert_eq!(item.candidates.len(), 10);
            let uniq: HashSet<&String> = item.candidates.iter().collect();
            assert_eq!(uniq.len(), 10);
        }
        let judge = CentroidJudge::new(&emb);
        let r = run_intrusion(&items, &judge).unwrap();
        assert_eq!((r.items, r.correct, r.accuracy, r.chance), (2, 2, 1.0, 0.1));
        let control = random_items(index.index(), &items, 5);
        assert_eq!(control.len(), 2);
        assert!(judge.pick_intruder(0, &["nope".into()]).is_err());
    }

    #[test]
    fn lexical_judge_finds_the_off_topic_passage() {
        let texts = [
            ("a", "insulin resistance in obese mice"),
            ("b", "insulin signalling in mice"),
            ("c", "insulin and glucose in obese patients"),
            ("d", "volcanic ash over iceland"),
        ];
        let judge = LexicalJudge::new(texts.iter().map(|(i, t)| (i.to_string(), t.to_string())));
        let ids: Vec<String> = ["a", "d", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(judge.pick_intruder(0, &ids).unwrap(), 1);
        assert!(judge.pick_intruder(0, &["zz".into()]).is_err());
    }

    #[test]
    fn rng_is_seeded_and_uniform_enough() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let mut counts = [0usize; 10];
        for _ in 0..10_000 {
            counts[a.below(10)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }
}
