//! Explanations: a document as its top latents (activation × IDF), and a query–document
//! match as the latents both share, each with its contribution to the score.

use std::collections::HashMap;

use latent_terms_sparse_index::{Index, Query, Scorer};
use serde::{Deserialize, Serialize};

use super::cards::{bm25_idf, num_docs};
use super::describe::Descriptions;
use crate::error::{Error, Result};

/// One latent of a document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightedLatent {
    /// Latent id.
    pub latent: u32,
    /// Its activation in the document.
    pub activation: f32,
    /// Its BM25 IDF.
    pub idf: f64,
    /// `activation × idf`, the order of the list.
    pub weight: f64,
    /// Its description, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A document as its latents, heaviest (activation × IDF) first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocumentExplanation {
    /// External document id.
    pub doc: String,
    /// Its latents.
    pub latents: Vec<WeightedLatent>,
}

/// The documents of an index as rows of `(latent, activation)`: the forward view of the
/// inverted index, with each latent's document frequency.
#[derive(Clone, Debug)]
pub struct ForwardIndex {
    rows: HashMap<String, Vec<(u32, f32)>>,
    doc_freq: HashMap<u32, u64>,
    num_docs: u64,
}

impl ForwardIndex {
    /// Inverts the index's postings (live documents only).
    pub fn new(index: &Index) -> Result<Self> {
        let mut rows: HashMap<String, Vec<(u32, f32)>> = HashMap::new();
        let mut doc_freq = HashMap::new();
        for term in index.term_ids() {
            let postings = index.postings(term)?;
            doc_freq.insert(term, postings.len() as u64);
            for (doc, w) in postings {
                if let Some(id) = index.external_id(doc) {
                    rows.entry(id.to_owned()).or_default().push((term, w));
                }
            }
        }
        Ok(ForwardIndex {
            rows,
            doc_freq,
            num_docs: num_docs(index)?,
        })
    }

    /// A document's `(latent, activation)` pairs in latent order.
    pub fn latents(&self, doc: &str) -> Option<&[(u32, f32)]> {
        self.rows.get(doc).map(Vec::as_slice)
    }

    /// A latent's BM25 IDF.
    pub fn idf(&self, latent: u32) -> f64 {
        bm25_idf(
            self.doc_freq.get(&latent).copied().unwrap_or(0),
            self.num_docs,
        )
    }

    /// The document's `top` latents by activation × IDF, with their descriptions.
    pub fn explain(
        &self,
        doc: &str,
        descriptions: Option<&Descriptions>,
        top: usize,
    ) -> Result<DocumentExplanation> {
        let row = self.latents(doc).ok_or_else(|| {
            Error::Invalid(format!("document {doc:?} is not in the latent index"))
        })?;
        let mut latents: Vec<WeightedLatent> = row
            .iter()
            .map(|&(latent, activation)| {
                let idf = self.idf(latent);
                WeightedLatent {
                    latent,
                    activation,
                    idf,
                    weight: f64::from(activation) * idf,
                    description: descriptions.and_then(|d| d.text(latent)).map(str::to_owned),
                }
            })
            .collect();
        latents.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.latent.cmp(&b.latent)));
        latents.truncate(top);
        Ok(DocumentExplanation {
            doc: doc.to_owned(),
            latents,
        })
    }
}

/// One latent shared by a query and a document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SharedLatent {
    /// Latent id.
    pub latent: u32,
    /// Query activation.
    pub query_weight: f32,
    /// Document activation.
    pub doc_weight: f32,
    /// The scorer's IDF of the latent.
    pub idf: f32,
    /// Its term of the score: `query factor × idf × doc factor`.
    pub contribution: f32,
    /// Its description, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Why a document scores what it does for a query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatchExplanation {
    /// Query id.
    pub query: String,
    /// External document id.
    pub doc: String,
    /// Scorer name (`clsr`, `lt-bm25`, `dot`, …).
    pub scorer: String,
    /// The score the index's search gives the document.
    pub score: f32,
    /// Shared latents, largest contribution first; the contributions sum to `score`.
    pub shared: Vec<SharedLatent>,
}

impl MatchExplanation {
    /// The sum of the contributions in f64 (equal to `score` up to f32 rounding).
    pub fn total(&self) -> f64 {
        self.shared.iter().map(|s| f64::from(s.contribution)).sum()
    }

    /// Plain-text table for the terminal.
    pub fn table(&self) -> String {
        let mut s = format!(
            "query {} × doc {}: {} score {:.4} ({} shared latents)\n",
            self.query,
            self.doc,
            self.scorer,
            self.score,
            self.shared.len()
        );
        s.push_str("  latent  contribution   share  q.act  d.act    idf  description\n");
        for l in &self.shared {
            let share = if self.score != 0.0 {
                100.0 * f64::from(l.contribution) / f64::from(self.score)
            } else {
                0.0
            };
            s.push_str(&format!(
                "  {:>6}  {:>12.4}  {:>5.1}%  {:>5.3}  {:>5.3}  {:>5.2}  {}\n",
                l.latent,
                l.contribution,
                share,
                l.query_weight,
                l.doc_weight,
                l.idf,
                l.description.as_deref().unwrap_or("")
            ));
        }
        s.push_str(&format!("  sum of contributions: {:.4}\n", self.total()));
        s
    }
}

/// Explains `doc`'s score for `query` under `scorer` through the index's explain.
pub fn explain_match(
    index: &Index,
    query_id: &str,
    query: &Query,
    scorer: &dyn Scorer,
    scorer_name: &str,
    doc: &str,
    descriptions: Option<&Descriptions>,
) -> Result<MatchExplanation> {
    let internal = index
        .doc_id(doc)
        .ok_or_else(|| Error::Invalid(format!("document {doc:?} is not in the latent index")))?;
    let why = index.explain(query, scorer, internal)?;
    let mut shared: Vec<SharedLatent> = why
        .terms
        .iter()
        .map(|t| SharedLatent {
            latent: t.term,
            query_weight: t.query_weight,
            doc_weight: t.doc_weight,
            idf: t.idf,
            contribution: t.contribution,
            description: descriptions.and_then(|d| d.text(t.term)).map(str::to_owned),
        })
        .collect();
    shared.sort_by(|a, b| {
        b.contribution
            .total_cmp(&a.contribution)
            .then(a.latent.cmp(&b.latent))
    });
    Ok(MatchExplanation {
        query: query_id.to_owned(),
        doc: doc.to_owned(),
        scorer: scorer_name.to_owned(),
        score: why.score,
        shared,
    })
}

/// How well the top shared latents alone reproduce a ranking (a proxy of CL-SR's
/// simulation study, Table 3, without people): at each budget `m`, a result's simulated
/// score is the sum of its `m` largest contributions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimulationRow {
    /// Shared latents shown per result.
    pub latents: usize,
    /// Share of queries whose simulated best result is the real first result.
    pub top1: f64,
    /// Share of result pairs (within a query) the simulated scores order like the real ones.
    pub pairwise: f64,
}

/// Simulates every query's ranking (`rankings[q]`: its results' explanations, in rank
/// order) from the top `m` contributions, for each budget `m`. Ties count as half right.
pub fn simulate_rankings(
    rankings: &[Vec<MatchExplanation>],
    budgets: &[usize],
) -> Vec<SimulationRow> {
    budgets
        .iter()
        .map(|&m| {
            let (mut top1, mut queries, mut agree, mut pairs) = (0.0, 0usize, 0.0, 0usize);
            for results in rankings.iter().filter(|r| !r.is_empty()) {
                let simulated: Vec<f64> = results
                    .iter()
                    .map(|e| {
                        e.shared
                            .iter()
                            .take(m)
                            .map(|s| f64::from(s.contribution))
                            .sum()
                    })
                    .collect();
                let best = simulated.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let winners = simulated.iter().filter(|&&v| v == best).count();
                if simulated[0] == best {
                    top1 += 1.0 / winners as f64;
                }
                queries += 1;
                for i in 0..results.len() {
                    for j in i + 1..results.len() {
                        let real = results[i].score.total_cmp(&results[j].score);
                        let sim = simulated[i].total_cmp(&simulated[j]);
                        pairs += 1;
                        agree += if sim == std::cmp::Ordering::Equal
                            || real == std::cmp::Ordering::Equal
                        {
                            0.5
                        } else if sim == real {
                            1.0
                        } else {
                            0.0
                        };
                    }
                }
            }
            SimulationRow {
                latents: m,
                top1: if queries > 0 {
                    top1 / queries as f64
                } else {
                    0.0
                },
                pairwise: if pairs > 0 { agree / pairs as f64 } else { 0.0 },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::LatentIndex;
    use latent_terms_sae::SparseCode;
    use latent_terms_sparse_index::{Bm25, ClSr, DotProduct};

    fn index() -> LatentIndex {
        let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let codes = [
            SparseCode::from_pairs(&[(0, 0.9), (1, 0.3), (4, 0.2)]),
            SparseCode::from_pairs(&[(0, 0.5), (2, 0.7)]),
            SparseCode::from_pairs(&[(0, 0.4), (1, 0.6)]),
        ];
        LatentIndex::build(&ids, &codes, None).unwrap()
    }

    #[test]
    fn document_latents_are_weighted_by_idf() {
        let idx = index();
        let fwd = ForwardIndex::new(idx.index()).unwrap();
        let mut d = Descriptions::new();
        d.insert(
            4,
            super::super::describe::Description {
                text: "rare".into(),
                source: "t".into(),
                keywords: vec![],
            },
        );
        let e = fwd.explain("a", Some(&d), 10).unwrap();
        // latent 0 is in every document, so its high activation weighs least.
        assert_eq!(e.latents.last().unwrap().latent, 0);
        assert!(e.latents.windows(2).all(|w| w[0].weight >= w[1].weight));
        let rare = e.latents.iter().find(|l| l.latent == 4).unwrap();
        assert_eq!(rare.description.as_deref(), Some("rare"));
        assert_eq!(fwd.explain("a", None, 1).unwrap().latents.len(), 1);
        assert!(fwd.explain("zz", None, 3).is_err());
    }

    #[test]
    fn match_contributions_sum_to_the_searched_score() {
        let idx = index();
        let q = Query::new([(0, 0.8), (1, 0.5), (2, 0.1)]).unwrap();
        let scorers: [(&str, Box<dyn Scorer>); 3] = [
            ("clsr", Box::new(ClSr::default())),
            ("lt-bm25", Box::new(Bm25::default())),
            ("dot", Box::new(DotProduct)),
        ];
        for (name, scorer) in &scorers {
            for (doc, score) in idx.search(&q, scorer.as_ref(), 10).unwrap() {
                let e =
                    explain_match(idx.index(), "q", &q, scorer.as_ref(), name, &doc, None).unwrap();
                assert_eq!(e.score, score);
                assert!(
                    (e.total() - f64::from(score)).abs() <= 1e-5 * f64::from(score).abs().max(1.0)
                );
                assert!(
                    e.shared
                        .windows(2)
                        .all(|w| w[0].contribution >= w[1].contribution)
                );
                assert!(e.table().contains("sum of contributions"));
            }
        }
        assert!(explain_match(idx.index(), "q", &q, &DotProduct, "dot", "zz", None).is_err());
    }

    #[test]
    fn simulation_with_every_latent_reproduces_the_ranking() {
        let idx = index();
        let q = Query::new([(0, 0.8), (1, 0.5), (2, 0.1)]).unwrap();
        let results: Vec<MatchExplanation> = idx
            .search(&q, &DotProduct, 10)
            .unwrap()
            .iter()
            .map(|(d, _)| explain_match(idx.index(), "q", &q, &DotProduct, "dot", d, None).unwrap())
            .collect();
        let rows = simulate_rankings(&[results, vec![]], &[1, 10]);
        assert_eq!(rows[1].top1, 1.0);
        assert_eq!(rows[1].pairwise, 1.0);
        assert!(rows[0].pairwise <= 1.0 && rows[0].latents == 1);
    }
}
