//! Mapping between string terms and the `u32` term ids the index stores.

use std::collections::HashMap;

use crate::analyzer::Analyzer;
use crate::error::{IndexError, Result};
use crate::vector::{Query, SparseVector};

/// A bijection between terms (strings) and dense term ids `0..len`.
///
/// Lexical documents go through an [`Analyzer`] and then through the vocabulary, which
/// assigns ids in first-seen order; queries use the same vocabulary read-only, so a query
/// term never seen in the collection is simply dropped (it could not match anything).
///
/// ```
/// use latent_terms_sparse_index::{Analyzer, Vocabulary};
///
/// let analyzer = Analyzer::english();
/// let mut vocab = Vocabulary::new();
/// let doc = vocab.add_document(&analyzer, "cats chase cats")?;
/// assert_eq!(doc.iter().collect::<Vec<_>>(), vec![(0, 2.0), (1, 1.0)]);
/// let query = vocab.query(&analyzer, "a cat and a dog");
/// assert_eq!(query.iter().collect::<Vec<_>>(), vec![(0, 1.0)]);
/// assert_eq!(vocab.term(1), Some("chase"));
/// # Ok::<(), latent_terms_sparse_index::IndexError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vocabulary {
    terms: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocabulary {
    /// An empty vocabulary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a vocabulary from terms in id order. Errors on a repeated term.
    pub fn from_terms<S: Into<String>>(terms: impl IntoIterator<Item = S>) -> Result<Self> {
        let mut vocab = Self::new();
        for term in terms {
            let term = term.into();
            if vocab.ids.contains_key(&term) {
                return Err(IndexError::DuplicateVocabularyTerm { term });
            }
            vocab.get_or_insert(&term)?;
        }
        Ok(vocab)
    }

    /// Number of terms.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// True if the vocabulary has no term.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The id of `term`, if known.
    pub fn id(&self, term: &str) -> Option<u32> {
        self.ids.get(term).copied()
    }

    /// The term with id `id`, if any.
    pub fn term(&self, id: u32) -> Option<&str> {
        self.terms.get(id as usize).map(String::as_str)
    }

    /// `(id, term)` pairs in id order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (u32, &str)> + '_ {
        // Ids fit in u32: `get_or_insert` refuses to grow past u32::MAX terms.
        self.terms
            .iter()
            .enumerate()
            .map(|(i, t)| (i as u32, t.as_str()))
    }

    /// The id of `term`, adding it if new.
    pub fn get_or_insert(&mut self, term: &str) -> Result<u32> {
        if let Some(&id) = self.ids.get(term) {
            return Ok(id);
        }
        let id = u32::try_from(self.terms.len()).map_err(|_| IndexError::TooLarge {
            what: "the vocabulary",
            size: self.terms.len() as u64,
            limit: u64::from(u32::MAX),
        })?;
        self.terms.push(term.to_owned());
        self.ids.insert(term.to_owned(), id);
        Ok(id)
    }

    /// Analyzes `text` and returns its term-frequency vector, adding unseen terms.
    pub fn add_document(&mut self, analyzer: &Analyzer, text: &str) -> Result<SparseVector> {
        let mut tf: HashMap<u32, u32> = HashMap::new();
        let mut failure = None;
        analyzer.for_each_term(text, |term| {
            if failure.is_some() {
                return;
            }
            match self.get_or_insert(term) {
                Ok(id) => *tf.entry(id).or_insert(0) += 1,
                Err(e) => failure = Some(e),
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        // Counts above 2^24 lose precision as f32; no real document repeats a word that often.
        SparseVector::new(tf.into_iter().map(|(t, n)| (t, n as f32)))
    }

    /// Analyzes `text` into a query: known terms with their query term frequency.
    pub fn query(&self, analyzer: &Analyzer, text: &str) -> Query {
        let mut ids = Vec::new();
        analyzer.for_each_term(text, |term| {
            if let Some(id) = self.id(term) {
                ids.push(id);
            }
        });
        Query::from_terms(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_dense_and_stable() {
        let mut v = Vocabulary::new();
        assert_eq!(v.get_or_insert("b").expect("fits"), 0);
        assert_eq!(v.get_or_insert("a").expect("fits"), 1);
        assert_eq!(v.get_or_insert("b").expect("fits"), 0);
        assert_eq!(v.iter().collect::<Vec<_>>(), vec![(0, "b"), (1, "a")]);
        assert_eq!(v.id("a"), Some(1));
        assert_eq!(v.term(7), None);
        let copy = Vocabulary::from_terms(["b", "a"]).expect("unique");
        assert_eq!(copy, v);
        assert!(matches!(
            Vocabulary::from_terms(["x", "x"]),
            Err(IndexError::DuplicateVocabularyTerm { .. })
        ));
    }

    #[test]
    fn query_counts_repeats_and_drops_unknown_terms() {
        let analyzer = Analyzer::english();
        let mut v = Vocabulary::new();
        v.add_document(&analyzer, "neural retrieval").expect("fits");
        let q = v.query(&analyzer, "retrieval retrieval of zebras");
        assert_eq!(q.iter().collect::<Vec<_>>(), vec![(1, 2.0)]);
    }
}
