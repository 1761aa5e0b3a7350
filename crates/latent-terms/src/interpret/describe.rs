//! Latent descriptions: a pluggable [`LatentDescriber`], the built-in
//! [`KeywordDescriber`], and [`Descriptions`] files (JSON keyed by latent id) to import
//! descriptions written elsewhere, for example by an LLM shown a latent's top passages.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use latent_terms_sparse_index::{Analyzer, ENGLISH_STOP_WORDS};
use serde::{Deserialize, Serialize};

use super::cards::LatentCard;
use crate::error::{Error, Result};
use crate::pipeline::write_atomic;

/// A word that separates a latent's top documents from the corpus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Keyword {
    /// The word (lowercased, not stemmed).
    pub word: String,
    /// Its z-scored log-odds ratio, top documents against the rest of the corpus.
    pub score: f64,
}

/// What a latent means, in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Description {
    /// The description shown to people.
    pub text: String,
    /// Who wrote it (`keywords`, `llm`, `imported`, …).
    #[serde(default)]
    pub source: String,
    /// The keywords it was made from, when a keyword describer wrote it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<Keyword>,
}

/// Writes descriptions of latents from their cards.
pub trait LatentDescriber {
    /// Describes one latent, or `None` when this describer has nothing to say about it.
    fn describe(&self, card: &LatentCard) -> Result<Option<Description>>;

    /// Sets the description of every card this describer can describe (others keep theirs).
    fn describe_all(&self, cards: &mut [LatentCard]) -> Result<()> {
        for card in cards {
            if let Some(d) = self.describe(card)? {
                card.description = Some(d);
            }
        }
        Ok(())
    }
}

/// Function words beyond Lucene's 33 that never make a useful description.
const EXTRA_STOP_WORDS: [&str; 64] = [
    "about", "after", "all", "also", "among", "been", "before", "being", "between", "both", "can",
    "could", "did", "does", "during", "each", "from", "had", "has", "have", "here", "how",
    "however", "its", "may", "more", "most", "much", "many", "might", "must", "other", "our",
    "over", "should", "since", "some", "than", "them", "through", "thus", "under", "until", "upon",
    "very", "via", "was", "we", "were", "what", "when", "where", "whether", "which", "while",
    "who", "whom", "why", "within", "without", "would", "you", "your", "only",
];

/// Describes a latent by the words that best separate its top documents from the rest of
/// the corpus: the weighted log-odds ratio with an informative Dirichlet prior (Monroe,
/// Colaresi & Quinn 2008), z-scored, over document frequencies (a word counts once per
/// document, so one long document cannot dominate).
///
/// For word `w`: `y_F` top documents contain it, `y_B` other documents; `n_F`, `n_B` are
/// the totals of those counts; the prior is `α_w = α₀ · c_w / Σc` from the corpus counts `c`.
/// `δ = ln((y_F+α_w)/(n_F+α₀−y_F−α_w)) − ln((y_B+α_w)/(n_B+α₀−y_B−α_w))`,
/// `z = δ / √(1/(y_F+α_w) + 1/(y_B+α_w))`. Words in fewer than `min_docs` top documents
/// are not considered.
pub struct KeywordDescriber {
    words: Vec<String>,
    doc_words: HashMap<String, Vec<u32>>,
    corpus_counts: Vec<u64>,
    corpus_total: u64,
    top_words: usize,
    min_docs: usize,
    prior: f64,
}

impl KeywordDescriber {
    /// Learns word document frequencies from `(document id, text)` pairs.
    pub fn new(docs: impl IntoIterator<Item = (String, String)>) -> Self {
        let analyzer = Analyzer::english().without_stemming().with_stopwords(
            ENGLISH_STOP_WORDS
                .iter()
                .chain(EXTRA_STOP_WORDS.iter())
                .map(|s| (*s).to_owned()),
        );
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut words: Vec<String> = Vec::new();
        let mut corpus_counts: Vec<u64> = Vec::new();
        let mut doc_words = HashMap::new();
        for (id, text) in docs {
            let mut set: Vec<u32> = Vec::new();
            analyzer.for_each_term(&text, |t| {
                if t.chars().count() < 3 || !t.chars().any(char::is_alphabetic) {
                    return;
                }
                let wid = *ids.entry(t.to_owned()).or_insert_with(|| {
                    words.push(t.to_owned());
                    corpus_counts.push(0);
                    (words.len() - 1) as u32
                });
                set.push(wid);
            });
            set.sort_unstable();
            set.dedup();
            for &w in &set {
                corpus_counts[w as usize] += 1;
            }
            doc_words.insert(id, set);
        }
        let corpus_total = corpus_counts.iter().sum();
        KeywordDescriber {
            words,
            doc_words,
            corpus_counts,
            corpus_total,
            top_words: 5,
            min_docs: 2,
            prior: 500.0,
        }
    }

    /// Keywords per description (default 5).
    #[must_use]
    pub fn top_words(mut self, n: usize) -> Self {
        self.top_words = n;
        self
    }

    /// Top documents a word must occur in (default 2; 1 when a latent has one document).
    #[must_use]
    pub fn min_docs(mut self, n: usize) -> Self {
        self.min_docs = n;
        self
    }

    /// The words that best separate `docs` (document ids; unknown ones are skipped) from
    /// the rest of the corpus, best first, with positive scores only.
    pub fn keywords(&self, docs: &[&str]) -> Vec<Keyword> {
        let sets: Vec<&Vec<u32>> = docs.iter().filter_map(|d| self.doc_words.get(*d)).collect();
        if sets.is_empty() || self.corpus_total == 0 {
            return Vec::new();
        }
        let mut y_f: HashMap<u32, u64> = HashMap::new();
        for set in &sets {
            for &w in set.iter() {
                *y_f.entry(w).or_default() += 1;
            }
        }
        let n_f: u64 = y_f.values().sum();
        let n_b = self.corpus_total.saturating_sub(n_f) as f64;
        let (n_f, a0) = (n_f as f64, self.prior);
        let min_docs = self.min_docs.min(sets.len()).max(1) as u64;
        let mut scored: Vec<Keyword> = y_f
            .iter()
            .filter(|&(_, &y)| y >= min_docs)
            .map(|(&w, &y)| {
                let c = self.corpus_counts[w as usize];
                let a = a0 * c as f64 / self.corpus_total as f64;
                let (yf, yb) = (y as f64, c.saturating_sub(y) as f64);
                let delta =
                    ((yf + a) / (n_f + a0 - yf - a)).ln() - ((yb + a) / (n_b + a0 - yb - a)).ln();
                let z = delta / (1.0 / (yf + a) + 1.0 / (yb + a)).sqrt();
                Keyword {
                    word: self.words[w as usize].clone(),
                    score: z,
                }
            })
            .filter(|k| k.score.is_finite() && k.score > 0.0)
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.word.cmp(&b.word)));
        scored.truncate(self.top_words);
        scored
    }
}

impl LatentDescriber for KeywordDescriber {
    fn describe(&self, card: &LatentCard) -> Result<Option<Description>> {
        let ids: Vec<&str> = card.top_docs.iter().map(|d| d.id.as_str()).collect();
        let keywords = self.keywords(&ids);
        if keywords.is_empty() {
            return Ok(None);
        }
        Ok(Some(Description {
            text: keywords
                .iter()
                .map(|k| k.word.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            source: "keywords".into(),
            keywords,
        }))
    }
}

/// A description as written in a file: an object, or just its text.
#[derive(Deserialize)]
#[serde(untagged)]
enum Entry {
    Text(String),
    Full(Description),
}

/// Descriptions keyed by latent id: the JSON file `{"12": {"text": …, "source": …}, …}`
/// (an entry may also be just a string, `{"12": "cancer cells"}`).
///
/// ```
/// use latent_terms::interpret::describe::Descriptions;
///
/// let d = Descriptions::from_json(r#"{"12": "insulin signalling", "40": {"text": "mouse models", "source": "llm"}}"#)?;
/// assert_eq!(d.text(12), Some("insulin signalling"));
/// assert_eq!(d.get(40).map(|x| x.source.as_str()), Some("llm"));
/// assert_eq!(Descriptions::from_json(&d.to_json())?, d);
/// # Ok::<(), latent_terms::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Descriptions {
    map: BTreeMap<u32, Description>,
}

impl Descriptions {
    /// No descriptions.
    pub fn new() -> Self {
        Self::default()
    }

    /// The descriptions the cards carry.
    pub fn from_cards(cards: &[LatentCard]) -> Self {
        let map = cards
            .iter()
            .filter_map(|c| c.description.clone().map(|d| (c.latent, d)))
            .collect();
        Descriptions { map }
    }

    /// Parses a descriptions file; entries without a source get `imported`.
    pub fn from_json(text: &str) -> Result<Self> {
        let raw: BTreeMap<String, Entry> =
            serde_json::from_str(text).map_err(|e| Error::Invalid(format!("descriptions: {e}")))?;
        let mut map = BTreeMap::new();
        for (key, entry) in raw {
            let latent: u32 = key.trim().parse().map_err(|_| {
                Error::Invalid(format!("descriptions: key {key:?} is not a latent id"))
            })?;
            let mut d = match entry {
                Entry::Text(text) => Description {
                    text,
                    source: String::new(),
                    keywords: Vec::new(),
                },
                Entry::Full(d) => d,
            };
            if d.source.is_empty() {
                d.source = "imported".into();
            }
            map.insert(latent, d);
        }
        Ok(Descriptions { map })
    }

    /// The file's JSON (pretty, keys in latent order).
    pub fn to_json(&self) -> String {
        let keyed: BTreeMap<u32, &Description> = self.map.iter().map(|(k, v)| (*k, v)).collect();
        serde_json::to_string_pretty(&keyed).unwrap_or_else(|_| "{}".into())
    }

    /// Reads a descriptions file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }

    /// Writes the descriptions file atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_json().as_bytes())
    }

    /// Sets one latent's description.
    pub fn insert(&mut self, latent: u32, description: Description) {
        self.map.insert(latent, description);
    }

    /// A latent's description.
    pub fn get(&self, latent: u32) -> Option<&Description> {
        self.map.get(&latent)
    }

    /// A latent's description text.
    pub fn text(&self, latent: u32) -> Option<&str> {
        self.map.get(&latent).map(|d| d.text.as_str())
    }

    /// Number of described latents.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is described.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl LatentDescriber for Descriptions {
    fn describe(&self, card: &LatentCard) -> Result<Option<Description>> {
        Ok(self.get(card.latent).cloned())
    }
}

/// A prompt asking a language model to describe a latent from its top passages (in the
/// manner of CL-SR §4: the passages that activate a latent most, and a request for a
/// short concept name; the wording is ours). Answers go back as a [`Descriptions`] file.
pub fn llm_prompt(card: &LatentCard, passages: &[String]) -> String {
    let mut p = format!(
        "The following passages all strongly activate feature {} of a text retrieval \
         model. Describe, in at most ten words, the concept they share. Answer with the \
         description only.\n\n",
        card.latent
    );
    for (i, text) in passages.iter().enumerate() {
        p.push_str(&format!("Passage {}: {}\n", i + 1, text.trim()));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interpret::cards::CardDoc;

    fn corpus() -> KeywordDescriber {
        let docs = [
            ("a", "Insulin resistance in obese mice"),
            ("b", "Insulin signalling and glucose uptake in mice"),
            ("c", "Glucose uptake by tumour cells"),
            ("d", "Tumour cells evade the immune system"),
            ("e", "The immune system of mice and men"),
        ];
        KeywordDescriber::new(docs.iter().map(|(i, t)| (i.to_string(), t.to_string())))
    }

    #[test]
    fn keywords_separate_the_top_documents() {
        let k = corpus().keywords(&["a", "b", "zz"]);
        assert_eq!(k[0].word, "insulin");
        assert!(k.iter().all(|w| w.word != "the" && w.word != "and"));
        assert!(k.windows(2).all(|w| w[0].score >= w[1].score));
        let card = LatentCard {
            latent: 3,
            doc_freq: 2,
            idf: 1.0,
            top_docs: ["d", "c"]
                .iter()
                .map(|id| CardDoc {
                    id: id.to_string(),
                    activation: 1.0,
                    title: None,
                })
                .collect(),
            description: None,
        };
        let d = corpus().describe(&card).unwrap().unwrap();
        assert!(
            d.text.starts_with("tumour") || d.text.starts_with("cells"),
            "{}",
            d.text
        );
        assert_eq!(d.source, "keywords");
        assert!(corpus().keywords(&["nope"]).is_empty());
    }

    #[test]
    fn descriptions_round_trip_and_reject_bad_keys() {
        let mut cards = vec![LatentCard {
            latent: 9,
            doc_freq: 0,
            idf: 0.0,
            top_docs: vec![],
            description: None,
        }];
        let d = Descriptions::from_json(r#"{"9": "nine"}"#).unwrap();
        d.describe_all(&mut cards).unwrap();
        assert_eq!(cards[0].description.as_ref().unwrap().source, "imported");
        assert_eq!(Descriptions::from_cards(&cards), d);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.json");
        d.save(&path).unwrap();
        assert_eq!(Descriptions::load(&path).unwrap(), d);
        assert!(Descriptions::from_json(r#"{"x": "bad"}"#).is_err());
        assert!(Descriptions::from_json("[1]").is_err());
        let prompt = llm_prompt(&cards[0], &["first".into(), "second".into()]);
        assert!(prompt.contains("Passage 2: second"));
    }
}
