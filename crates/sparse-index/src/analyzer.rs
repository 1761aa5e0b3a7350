//! Text analysis for lexical BM25: text in, normalised terms out.

use std::collections::HashSet;
use std::fmt;

use rust_stemmers::{Algorithm, Stemmer};
use unicode_segmentation::UnicodeSegmentation;

/// Lucene's `EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`, the 33 stopwords every
/// Lucene/Anserini/Pyserini English BM25 baseline removes.
pub const ENGLISH_STOP_WORDS: [&str; 33] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// Splits text into terms: Unicode (UAX #29) word segmentation, English possessive
/// removal, lowercasing, stopword removal and Snowball stemming.
///
/// [`Analyzer::english`] mirrors Lucene's `EnglishAnalyzer` in its steps
/// (`StandardTokenizer`, `EnglishPossessiveFilter`, `LowerCaseFilter`, `StopFilter` with
/// the 33 stopwords above, then a stemmer), with one documented difference: the stemmer
/// is Snowball English (Porter2) from `rust-stemmers`, where Lucene uses the original
/// Porter stemmer, so a few words stem differently.
///
/// ```
/// use latent_terms_sparse_index::Analyzer;
///
/// let analyzer = Analyzer::english();
/// assert_eq!(
///     analyzer.analyze("The Runner's shoes are RUNNING fast!"),
///     vec!["runner", "shoe", "run", "fast"]
/// );
/// ```
#[derive(Clone)]
pub struct Analyzer {
    lowercase: bool,
    possessives: bool,
    stopwords: HashSet<String>,
    stemmer: Option<Algorithm>,
}

impl Analyzer {
    /// Lucene `EnglishAnalyzer`-like analysis with Snowball English stemming.
    pub fn english() -> Self {
        Self {
            lowercase: true,
            possessives: true,
            stopwords: ENGLISH_STOP_WORDS.iter().map(|s| (*s).to_owned()).collect(),
            stemmer: Some(Algorithm::English),
        }
    }

    /// Word segmentation and lowercasing only: no stopwords, no stemming.
    pub fn plain() -> Self {
        Self {
            lowercase: true,
            possessives: false,
            stopwords: HashSet::new(),
            stemmer: None,
        }
    }

    /// Replaces the stopword list. Stopwords are compared after lowercasing and possessive
    /// removal, before stemming, as in Lucene.
    pub fn with_stopwords<S: Into<String>>(mut self, words: impl IntoIterator<Item = S>) -> Self {
        self.stopwords = words.into_iter().map(Into::into).collect();
        self
    }

    /// Turns stemming off.
    pub fn without_stemming(mut self) -> Self {
        self.stemmer = None;
        self
    }

    /// Calls `emit` with every term of `text`, in order.
    pub fn for_each_term(&self, text: &str, mut emit: impl FnMut(&str)) {
        let stemmer = self.stemmer.map(Stemmer::create);
        // One buffer for every word: query analysis is inside every timed search.
        let mut token = String::new();
        for word in text.unicode_words() {
            token.clear();
            if !self.lowercase {
                token.push_str(word);
            } else if word.is_ascii() {
                token.push_str(word);
                token.make_ascii_lowercase();
            } else {
                // `str::to_lowercase` knows context (a word-final Σ becomes ς).
                token.push_str(&word.to_lowercase());
            }
            if self.possessives {
                strip_possessive(&mut token);
            }
            if token.is_empty() || self.stopwords.contains(token.as_str()) {
                continue;
            }
            match &stemmer {
                Some(s) => emit(&s.stem(&token)),
                None => emit(&token),
            }
        }
    }

    /// The terms of `text`, in order, with repeats.
    pub fn analyze(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_term(text, |t| out.push(t.to_owned()));
        out
    }
}

/// Lucene's `EnglishPossessiveFilter`: drop a trailing `'s` (also with the typographic
/// apostrophes U+2019 and U+FF07), so "it's" meets the stopword "it" before stemming.
fn strip_possessive(token: &mut String) {
    for suffix in ["'s", "\u{2019}s", "\u{ff07}s"] {
        if token.ends_with(suffix) {
            token.truncate(token.len() - suffix.len());
            return;
        }
    }
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::english()
    }
}

impl fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut stopwords: Vec<&String> = self.stopwords.iter().collect();
        stopwords.sort();
        f.debug_struct("Analyzer")
            .field("lowercase", &self.lowercase)
            .field("possessives", &self.possessives)
            .field("stopwords", &stopwords)
            .field(
                "stemmer",
                &self.stemmer.map(|_| "snowball-english").unwrap_or("none"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn english_removes_all_33_stopwords() {
        let analyzer = Analyzer::english();
        assert!(analyzer.analyze(&ENGLISH_STOP_WORDS.join(" ")).is_empty());
        assert_eq!(ENGLISH_STOP_WORDS.len(), 33);
        assert_eq!(analyzer.analyze("It's THE end"), vec!["end"]);
    }

    #[test]
    fn english_segments_unicode_lowercases_and_stems() {
        let analyzer = Analyzer::english();
        assert_eq!(
            analyzer.analyze("Connections, connected; CONNECTING — Ünïcode café 2024"),
            vec!["connect", "connect", "connect", "ünïcode", "café", "2024"]
        );
        assert_eq!(analyzer.analyze("   ...!!! "), Vec::<String>::new());
    }

    #[test]
    fn lowercasing_is_str_to_lowercase_for_ascii_and_other_words() {
        let plain = Analyzer::plain();
        // A word-final capital sigma lowercases to ς, which only `str::to_lowercase` knows.
        for text in ["ΟΔΟΣ Straße ÉCOLE MiXeD", "İstanbul ǅ ΣΑΣ"] {
            let expected: Vec<String> = text.unicode_words().map(str::to_lowercase).collect();
            assert_eq!(plain.analyze(text), expected, "{text}");
        }
        assert_eq!(plain.analyze("ΟΔΟΣ"), vec!["οδος"]);
    }

    #[test]
    fn plain_and_custom_settings() {
        let plain = Analyzer::plain();
        assert_eq!(plain.analyze("The Cats"), vec!["the", "cats"]);
        let custom = Analyzer::english()
            .with_stopwords(["cats"])
            .without_stemming();
        assert_eq!(custom.analyze("the cats running"), vec!["the", "running"]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn never_panics_on_arbitrary_text(text in "\\PC{0,64}") {
            let terms = Analyzer::english().analyze(&text);
            prop_assert!(terms.len() <= text.unicode_words().count());
        }
    }
}
