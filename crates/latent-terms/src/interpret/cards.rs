//! Latent cards: what each latent is, read off the latent-term index.
//!
//! A card holds a latent's document frequency, its IDF (BM25's
//! `ln(1 + (N − df + 0.5) / (df + 0.5))`, the weight lt-bm25 gives it), its
//! top-activating documents with their activations, and optionally a description.

use std::collections::HashMap;
use std::path::Path;

use latent_terms_sparse_index::{DocLength, Index};
use serde::{Deserialize, Serialize};

use super::describe::Description;
use crate::error::{Error, Result};
use crate::pipeline::write_atomic;

/// One of a latent's top-activating documents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CardDoc {
    /// External document id.
    pub id: String,
    /// The latent's activation in the document (the stored index weight).
    pub activation: f32,
    /// The document's title or opening words, when texts were attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// A latent's card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentCard {
    /// Latent id (the SAE's latent index, the index's term id).
    pub latent: u32,
    /// Live documents the latent is active in.
    pub doc_freq: u64,
    /// BM25 IDF from `doc_freq` and the collection's document count.
    pub idf: f64,
    /// Top-activating documents, highest activation first (ties by document order).
    pub top_docs: Vec<CardDoc>,
    /// Description (keywords, or imported from elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Description>,
}

/// Which cards to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardOptions {
    /// Top-activating documents per card.
    pub top: usize,
    /// Only these latents (every latent with a posting when `None`).
    pub latents: Option<Vec<u32>>,
}

impl Default for CardOptions {
    fn default() -> Self {
        CardOptions {
            top: 10,
            latents: None,
        }
    }
}

/// A set of cards with the collection size their IDFs come from: the JSON file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CardSet {
    /// Live documents with at least one latent (BM25's N).
    pub num_docs: u64,
    /// Cards, by decreasing document frequency then latent id.
    pub cards: Vec<LatentCard>,
}

impl CardSet {
    /// Writes the set as pretty JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::Invalid(e.to_string()))?;
        write_atomic(path, json.as_bytes())
    }

    /// Reads a set written by [`CardSet::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }
}

/// BM25's IDF, `ln(1 + (N − df + 0.5) / (df + 0.5))`: positive for every df ≤ N.
pub fn bm25_idf(doc_freq: u64, num_docs: u64) -> f64 {
    let (n, df) = (num_docs as f64, doc_freq as f64);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

/// Live documents with at least one latent: the N of every IDF here.
pub fn num_docs(index: &Index) -> Result<u64> {
    Ok(index.collection_stats(DocLength::TermCount)?.num_docs)
}

/// The card of one latent (an unused latent gets df 0 and no documents).
pub fn card(index: &Index, latent: u32, top: usize) -> Result<LatentCard> {
    let n = num_docs(index)?;
    card_with(index, latent, top, n)
}

fn card_with(index: &Index, latent: u32, top: usize, n: u64) -> Result<LatentCard> {
    let mut postings = index.postings(latent)?;
    let df = postings.len() as u64;
    postings.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let top_docs = postings
        .iter()
        .take(top)
        .map(|&(doc, activation)| CardDoc {
            id: index.external_id(doc).unwrap_or_default().to_owned(),
            activation,
            title: None,
        })
        .collect();
    Ok(LatentCard {
        latent,
        doc_freq: df,
        idf: bm25_idf(df, n),
        top_docs,
        description: None,
    })
}

/// Cards of the chosen latents, by decreasing document frequency then latent id.
pub fn cards(index: &Index, options: &CardOptions) -> Result<Vec<LatentCard>> {
    let n = num_docs(index)?;
    let latents = match &options.latents {
        Some(l) => l.clone(),
        None => index.term_ids(),
    };
    let mut out = latents
        .iter()
        .map(|&l| card_with(index, l, options.top, n))
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| b.doc_freq.cmp(&a.doc_freq).then(a.latent.cmp(&b.latent)));
    Ok(out)
}

/// Fills the cards' document titles from `titles` (document id → title or opening words).
pub fn attach_titles(cards: &mut [LatentCard], titles: &HashMap<String, String>) {
    for doc in cards.iter_mut().flat_map(|c| c.top_docs.iter_mut()) {
        if let Some(t) = titles.get(&doc.id) {
            doc.title = Some(t.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::LatentIndex;
    use latent_terms_sae::SparseCode;

    #[test]
    fn cards_rank_by_df_and_docs_by_activation() {
        let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let codes = [
            SparseCode::from_pairs(&[(0, 0.2), (1, 1.0)]),
            SparseCode::from_pairs(&[(0, 0.9)]),
            SparseCode::from_pairs(&[(0, 0.5), (2, 0.1)]),
        ];
        let index = LatentIndex::build(&ids, &codes, None).unwrap();
        let cs = cards(
            index.index(),
            &CardOptions {
                top: 2,
                latents: None,
            },
        )
        .unwrap();
        assert_eq!(cs.iter().map(|c| c.latent).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(cs[0].doc_freq, 3);
        let top: Vec<&str> = cs[0].top_docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(top, ["b", "c"]);
        assert!((cs[1].idf - bm25_idf(1, 3)).abs() < 1e-12);
        assert!(cs[1].idf > cs[0].idf && cs[0].idf > 0.0);
        let unused = card(index.index(), 99, 5).unwrap();
        assert_eq!((unused.doc_freq, unused.top_docs.len()), (0, 0));
        let mut titled = cs.clone();
        attach_titles(
            &mut titled,
            &HashMap::from([("b".to_owned(), "Bee".to_owned())]),
        );
        assert_eq!(titled[0].top_docs[0].title.as_deref(), Some("Bee"));
        let dir = tempfile::tempdir().unwrap();
        let set = CardSet {
            num_docs: 3,
            cards: titled,
        };
        set.save(&dir.path().join("c.json")).unwrap();
        let back = CardSet::load(&dir.path().join("c.json")).unwrap();
        assert_eq!(back.cards.len(), set.cards.len());
        for (a, b) in back.cards.iter().zip(&set.cards) {
            assert_eq!(
                (a.latent, a.doc_freq, &a.top_docs),
                (b.latent, b.doc_freq, &b.top_docs)
            );
            assert!((a.idf - b.idf).abs() < 1e-12);
        }
    }
}
