//! Token-level latents made readable: every latent's top-activating words in context,
//! the words where a query and a document share a latent, and an automatic class per
//! latent (lexical, narrow semantic, broad topical).
//!
//! The token SAE of `latent-terms run --representation tokens` fires on single tokens, so
//! a latent is best read from the words it fires on. [`top_tokens`] makes, in one
//! streaming pass over a corpus [`TokenStore`], each latent's top-N firings (activation,
//! document, word span); memory is about `d_sae × N` entries plus one block of token rows.
//! [`token_cards`] renders them as [`TokenContext`]s (the word highlighted inside its
//! sentence, at most [`CardOptions::window`] words each side) and [`classify`] labels each
//! latent. Token offsets are byte offsets of (sub-word) tokens; [`word_span`] widens them
//! to the whole word (the alphanumeric run around the token) for display and classes.
//!
//! ```
//! use latent_terms::interpret::tokens::{ClassRule, LatentClass, classify, highlight, word_span};
//!
//! let text = "Sea otters crack shells. They float on their backs.";
//! // A WordPiece token "##ter" (bytes 6..9) widens to the word "otters".
//! assert_eq!(word_span(text, 6, 9), Some((4, 10)));
//! let c = highlight(text, (4, 10), 12);
//! assert_eq!(c.marked, "Sea «otters» crack shells.");
//!
//! let forms = ["otters", "otters", "otters", "otters", "otter"].map(String::from);
//! assert_eq!(classify(&forms, &ClassRule::default()), LatentClass::Lexical);
//! ```

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::path::Path;

use latent_terms_encoders::{TokenStore, TokenVectors};
use latent_terms_eval::beir::BeirDataset;
use latent_terms_sae::{EncodeOptions, SaeEncoder, SparseCode};
use latent_terms_sparse_index::Index;
use serde::{Deserialize, Serialize};

use super::escape_html;
use crate::error::{Error, Result};
use crate::pipeline::Artifacts;

/// Texts read from a token store and encoded together.
const TEXTS_PER_BLOCK: usize = 64;

// ---------------------------------------------------------------------------------------
// Words and contexts
// ---------------------------------------------------------------------------------------

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// The byte span of the whole word around the token at bytes `[start, end)` of `text`:
/// the token without surrounding whitespace, widened over adjacent alphanumeric
/// characters. A token with no alphanumeric character (punctuation) keeps its own span.
/// `None` for an empty span, a span outside `text` or not on character boundaries.
pub fn word_span(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let token = text.get(start..end)?;
    let lead = token.len() - token.trim_start().len();
    let (start, end) = (start + lead, start + token.trim_end().len());
    if start >= end {
        return None;
    }
    if !text[start..end].chars().any(is_word_char) {
        return Some((start, end));
    }
    let s = start
        - text[..start]
            .chars()
            .rev()
            .take_while(|&c| is_word_char(c))
            .map(char::len_utf8)
            .sum::<usize>();
    let e = end
        + text[end..]
            .chars()
            .take_while(|&c| is_word_char(c))
            .map(char::len_utf8)
            .sum::<usize>();
    Some((s, e))
}

/// Byte where the sentence holding byte `at` starts: after the last `.`, `!` or `?`
/// followed by whitespace, or the last newline, before `at`.
fn sentence_start(text: &str, at: usize) -> usize {
    let head = &text[..at];
    let mut from = 0;
    let mut prev_end: Option<char> = None;
    for (i, c) in head.char_indices() {
        if c == '\n' || (c.is_whitespace() && matches!(prev_end, Some('.' | '!' | '?'))) {
            from = i + c.len_utf8();
        }
        prev_end = Some(c);
    }
    from
}

/// Byte where the sentence holding byte `at` ends: after the first `.`, `!` or `?`
/// followed by whitespace or the end of the text, or before the first newline.
fn sentence_end(text: &str, at: usize) -> usize {
    let tail = &text[at..];
    let mut chars = tail.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\n' {
            return at + i;
        }
        let next_blank = chars.peek().is_none_or(|&(_, n)| n.is_whitespace());
        if matches!(c, '.' | '!' | '?') && next_blank {
            return at + i + c.len_utf8();
        }
    }
    text.len()
}

/// Byte offsets where the whitespace-separated words of `s` start.
fn word_starts(s: &str) -> Vec<usize> {
    let mut prev_blank = true;
    let mut out = Vec::new();
    for (i, c) in s.char_indices() {
        if !c.is_whitespace() && prev_blank {
            out.push(i);
        }
        prev_blank = c.is_whitespace();
    }
    out
}

/// The last `w` words of `s` (its end kept as is) and whether words were cut.
fn tail_words(s: &str, w: usize) -> (&str, bool) {
    let starts = word_starts(s);
    if starts.len() <= w {
        return (s, false);
    }
    let from = starts.len() - w;
    let at = starts.get(from).copied().unwrap_or(s.len());
    (&s[at..], true)
}

/// The first `w` words of `s` (its start kept as is) and whether words were cut.
fn head_words(s: &str, w: usize) -> (&str, bool) {
    let starts = word_starts(s);
    match starts.get(w) {
        Some(&next) => (s[..next].trim_end(), true),
        None => (s, false),
    }
}

/// Whitespace runs as single spaces, keeping whether the text starts or ends with one.
fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = false;
    for c in s.chars() {
        if c.is_whitespace() {
            if !blank {
                out.push(' ');
            }
            blank = true;
        } else {
            out.push(c);
            blank = false;
        }
    }
    out
}

/// A highlighted word in its context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenContext {
    /// The text's id (filled by the caller; empty from [`highlight`]).
    pub doc: String,
    /// The latent's activation on the token (the largest over the word's tokens).
    pub activation: f32,
    /// The whole word, as written.
    pub word: String,
    /// Byte span `[start, end)` of the word in the text.
    pub span: (usize, usize),
    /// Context before the word (with `…` when cut).
    pub before: String,
    /// Context after the word (with `…` when cut).
    pub after: String,
    /// `before«word»after`, the plain-text rendering.
    pub marked: String,
}

impl TokenContext {
    /// HTML rendering: the context escaped, the word in `<mark>`.
    pub fn html(&self) -> String {
        format!(
            "{}<mark>{}</mark>{}",
            escape_html(&self.before),
            escape_html(&self.word),
            escape_html(&self.after)
        )
    }
}

/// The word at byte `span` of `text` inside its sentence, with at most `window` words on
/// each side (`…` marks a cut); whitespace runs become single spaces. A span outside the
/// text or off character boundaries gives an empty context.
pub fn highlight(text: &str, span: (usize, usize), window: usize) -> TokenContext {
    let (s, e) = span;
    let Some(word) = text.get(s..e) else {
        return TokenContext {
            doc: String::new(),
            activation: 0.0,
            word: String::new(),
            span,
            before: String::new(),
            after: String::new(),
            marked: String::new(),
        };
    };
    let (left, cut_left) = tail_words(text[sentence_start(text, s)..s].trim_start(), window);
    let (right, cut_right) = head_words(text[e..sentence_end(text, e)].trim_end(), window);
    let before = format!("{}{}", if cut_left { "…" } else { "" }, collapse(left));
    let after = format!("{}{}", collapse(right), if cut_right { "…" } else { "" });
    TokenContext {
        doc: String::new(),
        activation: 0.0,
        marked: format!("{before}«{word}»{after}"),
        word: word.to_owned(),
        span,
        before,
        after,
    }
}

// ---------------------------------------------------------------------------------------
// Streaming top-N
// ---------------------------------------------------------------------------------------

/// One firing kept by [`top_tokens`]: a text (its index in the store) and a word span.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Entry {
    activation: f32,
    text: u32,
    span: (u32, u32),
}

impl Eq for Entry {}

impl Ord for Entry {
    /// Larger activation first; on ties the earlier text and word rank higher.
    fn cmp(&self, other: &Self) -> Ordering {
        self.activation
            .total_cmp(&other.activation)
            .then_with(|| other.text.cmp(&self.text))
            .then_with(|| other.span.cmp(&self.span))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A latent's strongest firings over a corpus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentTop {
    /// The latent.
    pub latent: u32,
    /// Word occurrences it fired on in the whole corpus.
    pub fired: u64,
    /// Its top firings, strongest first: `(doc id, activation, word byte span)`.
    pub top: Vec<(String, f32, (usize, usize))>,
}

/// Options of [`top_tokens`].
#[derive(Clone, Debug, PartialEq)]
pub struct TopOptions {
    /// Latents kept per token (the run's `tokens.k`).
    pub k: usize,
    /// Firings kept per latent.
    pub top: usize,
}

/// Every text's codes of one block, keyed per word: latent → word span → largest
/// activation (a latent firing on several pieces of one word counts once).
fn word_firings(
    text: &str,
    tokens: &TokenVectors,
    codes: &[SparseCode],
) -> BTreeMap<u32, BTreeMap<(usize, usize), f32>> {
    let mut out: BTreeMap<u32, BTreeMap<(usize, usize), f32>> = BTreeMap::new();
    for (&(s, e), code) in tokens.offsets.iter().zip(codes) {
        let Some(span) = word_span(text, s as usize, e as usize) else {
            continue;
        };
        for (latent, v) in code.iter().filter(|&(_, v)| v > 0.0) {
            let best = out.entry(latent).or_default().entry(span).or_insert(v);
            *best = best.max(v);
        }
    }
    out
}

fn check_dims(sae: &SaeEncoder, store: &TokenStore) -> Result<()> {
    if store.dim() != sae.d_in() {
        return Err(Error::Invalid(format!(
            "token store {} has dimension {}, the token SAE takes {}",
            store.path().display(),
            store.dim(),
            sae.d_in()
        )));
    }
    Ok(())
}

/// Encodes texts' token rows with the SAE at top-`k`, one code per token.
fn encode_texts(sae: &SaeEncoder, texts: &[TokenVectors], k: usize) -> Result<Vec<SparseCode>> {
    let rows: Vec<f32> = texts.iter().flat_map(|t| t.data.iter().copied()).collect();
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let k = k.clamp(1, sae.d_sae());
    Ok(sae.encode(&rows, &EncodeOptions::top_k(k))?)
}

/// Each latent's top-`options.top` word firings over every text of `store`, in one
/// streaming pass (blocks of texts, each encoded by the SAE, a bounded min-heap per
/// latent). `text_of(id)` returns the text that was encoded (for a BEIR document its
/// `full_text()`); firings are widened to whole words and a latent counts once per word
/// occurrence. Latents that never fire are left out; the result is sorted by latent.
///
/// # Errors
/// [`Error::Invalid`] for a store whose dimension is not the SAE's or a text `text_of`
/// does not know; store and SAE errors.
pub fn top_tokens(
    sae: &SaeEncoder,
    store: &TokenStore,
    text_of: &dyn Fn(&str) -> Option<String>,
    options: &TopOptions,
) -> Result<Vec<LatentTop>> {
    check_dims(sae, store)?;
    let n = options.top.max(1);
    let mut heaps: Vec<BinaryHeap<Reverse<Entry>>> = vec![BinaryHeap::new(); sae.d_sae()];
    let mut fired = vec![0u64; sae.d_sae()];
    let mut first = 0usize;
    for block in store.blocks(TEXTS_PER_BLOCK) {
        let block = block?;
        let codes = encode_texts(sae, &block, options.k)?;
        let mut at = 0;
        for (j, tokens) in block.iter().enumerate() {
            let text = text_of(&tokens.id).ok_or_else(|| {
                Error::Invalid(format!(
                    "text {:?} of the token store has no text",
                    tokens.id
                ))
            })?;
            let own = codes.get(at..at + tokens.len()).unwrap_or_default();
            at += tokens.len();
            let text_index = u32::try_from(first + j)
                .map_err(|_| Error::Invalid("more than 2^32 texts".into()))?;
            for (latent, words) in word_firings(&text, tokens, own) {
                let Some(heap) = heaps.get_mut(latent as usize) else {
                    continue;
                };
                fired[latent as usize] += words.len() as u64;
                for ((s, e), activation) in words {
                    let entry = Entry {
                        activation,
                        text: text_index,
                        span: (s as u32, e as u32),
                    };
                    push_bounded(heap, entry, n);
                }
            }
        }
        first += block.len();
    }
    let ids = store.ids();
    Ok(heaps
        .into_iter()
        .zip(fired)
        .enumerate()
        .filter(|(_, (_, f))| *f > 0)
        .map(|(latent, (heap, fired))| LatentTop {
            latent: latent as u32,
            fired,
            top: heap
                .into_sorted_vec()
                .into_iter()
                .map(|Reverse(e)| {
                    let id = ids.get(e.text as usize).cloned().unwrap_or_default();
                    (id, e.activation, (e.span.0 as usize, e.span.1 as usize))
                })
                .collect(),
        })
        .collect())
}

/// Keeps the `n` largest entries in a min-heap.
fn push_bounded(heap: &mut BinaryHeap<Reverse<Entry>>, entry: Entry, n: usize) {
    if heap.len() < n {
        heap.push(Reverse(entry));
    } else if heap.peek().is_some_and(|Reverse(min)| entry > *min) {
        heap.pop();
        heap.push(Reverse(entry));
    }
}

// ---------------------------------------------------------------------------------------
// Classes
// ---------------------------------------------------------------------------------------

/// What kind of feature a latent is, judged from the word forms of its top firings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatentClass {
    /// Fires on one word form.
    Lexical,
    /// Fires on a few word forms.
    Narrow,
    /// Fires on many word forms.
    Broad,
    /// Too few firings to tell.
    Rare,
}

impl LatentClass {
    /// `lexical`, `narrow`, `broad` or `rare`.
    pub fn as_str(self) -> &'static str {
        match self {
            LatentClass::Lexical => "lexical",
            LatentClass::Narrow => "narrow",
            LatentClass::Broad => "broad",
            LatentClass::Rare => "rare",
        }
    }
}

/// The rule of [`classify`], over the lowercased whole-word forms of a latent's top
/// firings (`n` of them).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassRule {
    /// `lexical` when the most common form is at least this share of the `n` forms.
    pub lexical_share: f64,
    /// Otherwise `narrow` when the distinct forms are at most this fraction of `n`,
    /// else `broad`.
    pub narrow_forms: f64,
    /// `rare` when `n` is below this.
    pub min_firings: usize,
}

impl Default for ClassRule {
    /// 80 % for lexical, a quarter of `n` for narrow, at least 5 firings.
    fn default() -> Self {
        ClassRule {
            lexical_share: 0.8,
            narrow_forms: 0.25,
            min_firings: 5,
        }
    }
}

/// Word forms (lowercased) with their counts, most common first (ties alphabetical).
pub fn form_counts<S: AsRef<str>>(words: &[S]) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for w in words {
        *counts.entry(w.as_ref().to_lowercase()).or_default() += 1;
    }
    let mut out: Vec<(String, usize)> = counts.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// Classifies a latent from the words of its top firings with `rule` (see
/// [`ClassRule`]).
pub fn classify<S: AsRef<str>>(words: &[S], rule: &ClassRule) -> LatentClass {
    let n = words.len();
    if n == 0 || n < rule.min_firings {
        return LatentClass::Rare;
    }
    let forms = form_counts(words);
    let top = forms.first().map_or(0, |f| f.1);
    if top as f64 >= rule.lexical_share * n as f64 {
        LatentClass::Lexical
    } else if forms.len() as f64 <= rule.narrow_forms * n as f64 {
        LatentClass::Narrow
    } else {
        LatentClass::Broad
    }
}

/// Entropy of the form distribution over `ln n` (`n` firings), in [0, 1]: 0 for one
/// form, 1 when every firing is a different form.
pub fn form_entropy(forms: &[(String, usize)]) -> f64 {
    let n: usize = forms.iter().map(|f| f.1).sum();
    if forms.len() < 2 || n < 2 {
        return 0.0;
    }
    let h: f64 = forms
        .iter()
        .map(|&(_, c)| {
            let p = c as f64 / n as f64;
            -p * p.ln()
        })
        .sum();
    h / (n as f64).ln()
}

// ---------------------------------------------------------------------------------------
// Cards
// ---------------------------------------------------------------------------------------

/// A latent read from its top-activating words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenCard {
    /// The latent.
    pub latent: u32,
    /// Word occurrences it fired on in the corpus.
    pub fired: u64,
    /// Its class by the card set's rule.
    pub class: LatentClass,
    /// Lowercased word forms of the top firings with their counts, most common first.
    pub forms: Vec<(String, usize)>,
    /// Normalized entropy of `forms` ([`form_entropy`]).
    pub entropy: f64,
    /// The top firings in context, strongest first.
    pub contexts: Vec<TokenContext>,
}

/// Options of [`token_cards`].
#[derive(Clone, Debug, PartialEq)]
pub struct CardOptions {
    /// Words of context on each side of the highlighted word.
    pub window: usize,
    /// The classification rule.
    pub rule: ClassRule,
}

impl Default for CardOptions {
    /// 12 words each side, [`ClassRule::default`].
    fn default() -> Self {
        CardOptions {
            window: 12,
            rule: ClassRule::default(),
        }
    }
}

/// Renders and classifies the firings of [`top_tokens`].
///
/// # Errors
/// [`Error::Invalid`] when `text_of` does not know a document of the firings.
pub fn token_cards(
    tops: &[LatentTop],
    text_of: &dyn Fn(&str) -> Option<String>,
    options: &CardOptions,
) -> Result<Vec<TokenCard>> {
    tops.iter()
        .map(|t| {
            let contexts = t
                .top
                .iter()
                .map(|(doc, activation, span)| {
                    let text = text_of(doc)
                        .ok_or_else(|| Error::Invalid(format!("document {doc:?} has no text")))?;
                    let mut c = highlight(&text, *span, options.window);
                    c.doc = doc.clone();
                    c.activation = *activation;
                    Ok(c)
                })
                .collect::<Result<Vec<_>>>()?;
            let words: Vec<&str> = contexts.iter().map(|c| c.word.as_str()).collect();
            let forms = form_counts(&words);
            Ok(TokenCard {
                latent: t.latent,
                fired: t.fired,
                class: classify(&words, &options.rule),
                entropy: form_entropy(&forms),
                forms,
                contexts,
            })
        })
        .collect()
}

/// How many latents fall in each class.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassShares {
    /// Latents with a card (every latent that fired).
    pub latents: usize,
    /// Lexical latents.
    pub lexical: usize,
    /// Narrow semantic latents.
    pub narrow: usize,
    /// Broad topical latents.
    pub broad: usize,
    /// Latents with too few firings to classify.
    pub rare: usize,
    /// Classified latents whose most common form is punctuation (no alphanumeric
    /// character), counted in their class too.
    #[serde(default)]
    pub punctuation: usize,
}

impl ClassShares {
    /// Counts the classes of `cards`.
    pub fn of(cards: &[TokenCard]) -> Self {
        let mut s = ClassShares {
            latents: cards.len(),
            ..Default::default()
        };
        for c in cards {
            match c.class {
                LatentClass::Lexical => s.lexical += 1,
                LatentClass::Narrow => s.narrow += 1,
                LatentClass::Broad => s.broad += 1,
                LatentClass::Rare => s.rare += 1,
            }
            let top_form = c.forms.first().map_or("", |f| f.0.as_str());
            if c.class != LatentClass::Rare && !top_form.chars().any(is_word_char) {
                s.punctuation += 1;
            }
        }
        s
    }

    /// `count` as a share of the classified latents (rare ones left out).
    pub fn share(&self, count: usize) -> f64 {
        let classified = self.lexical + self.narrow + self.broad;
        if classified == 0 {
            0.0
        } else {
            count as f64 / classified as f64
        }
    }

    /// One line: counts and shares of the classified latents.
    pub fn line(&self) -> String {
        format!(
            "classes of {} latents: lexical {} ({:.1}%), narrow {} ({:.1}%), broad {} ({:.1}%); rare {}; \
             punctuation as the most common form: {}",
            self.latents,
            self.lexical,
            100.0 * self.share(self.lexical),
            self.narrow,
            100.0 * self.share(self.narrow),
            self.broad,
            100.0 * self.share(self.broad),
            self.rare,
            self.punctuation
        )
    }
}

/// Token cards of a collection, with the rule and the class counts (the JSON of
/// `latent-terms cards --tokens`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenCardSet {
    /// Firings kept per latent.
    pub top: usize,
    /// Latents per token the corpus was encoded with.
    pub k: usize,
    /// The classification rule.
    pub rule: ClassRule,
    /// Class counts.
    pub shares: ClassShares,
    /// Cards, by latent.
    pub cards: Vec<TokenCard>,
}

impl TokenCardSet {
    /// Writes the set as pretty JSON (atomically).
    ///
    /// # Errors
    /// Writing errors.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Invalid(format!("token cards as JSON: {e}")))?;
        crate::pipeline::write_atomic(path, json.as_bytes())
    }
}

// ---------------------------------------------------------------------------------------
// Query–document explanations
// ---------------------------------------------------------------------------------------

/// A word where a latent fired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WordHit {
    /// The whole word.
    pub word: String,
    /// Its byte span in the text.
    pub span: (usize, usize),
    /// The latent's activation (largest over the word's tokens).
    pub activation: f32,
}

/// A latent both texts fire on, with the words where it fired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SharedLatent {
    /// The latent.
    pub latent: u32,
    /// `query_activation × doc_activation ×` the latent's weight (the order of the list).
    pub weight: f64,
    /// Sum of its activations over the query's words.
    pub query_activation: f32,
    /// Sum of its activations over the document's words.
    pub doc_activation: f32,
    /// Query words, strongest first.
    pub query: Vec<WordHit>,
    /// Document words, strongest first.
    pub doc: Vec<WordHit>,
}

/// Latent → words of one text where it fired, strongest first.
fn hits(
    sae: &SaeEncoder,
    tokens: &TokenVectors,
    text: &str,
    k: usize,
) -> Result<BTreeMap<u32, Vec<WordHit>>> {
    let codes = encode_texts(sae, std::slice::from_ref(tokens), k)?;
    Ok(word_firings(text, tokens, &codes)
        .into_iter()
        .map(|(latent, words)| {
            let mut list: Vec<WordHit> = words
                .into_iter()
                .map(|(span, activation)| WordHit {
                    word: text[span.0..span.1].to_owned(),
                    span,
                    activation,
                })
                .collect();
            list.sort_by(|a, b| b.activation.total_cmp(&a.activation));
            (latent, list)
        })
        .collect())
}

/// The latents shared by a query's and a document's tokens at top-`k`, each with the
/// words where it fired in both, ordered by [`SharedLatent::weight`] =
/// `query_activation × doc_activation × latent_weight(latent)` (largest first).
/// `latent_weight` gives a latent's weight (for example its IDF in the token index), or
/// `None` to leave it out (for example a stop latent, which is not in the index).
///
/// # Errors
/// [`Error::Invalid`] when a text's tokens do not have the SAE's dimension; SAE errors.
pub fn shared_latents(
    sae: &SaeEncoder,
    k: usize,
    query: (&TokenVectors, &str),
    doc: (&TokenVectors, &str),
    latent_weight: &dyn Fn(u32) -> Option<f64>,
) -> Result<Vec<SharedLatent>> {
    for t in [query.0, doc.0] {
        if !t.is_empty() && t.dim != sae.d_in() {
            return Err(Error::Invalid(format!(
                "text {:?} has token vectors of dimension {}, the token SAE takes {}",
                t.id,
                t.dim,
                sae.d_in()
            )));
        }
    }
    let q = hits(sae, query.0, query.1, k)?;
    let mut d = hits(sae, doc.0, doc.1, k)?;
    let sum = |h: &[WordHit]| h.iter().map(|w| w.activation).sum::<f32>();
    let mut out: Vec<SharedLatent> = q
        .into_iter()
        .filter_map(|(latent, qh)| {
            let w = latent_weight(latent)?;
            let dh = d.remove(&latent)?;
            let (qa, da) = (sum(&qh), sum(&dh));
            Some(SharedLatent {
                latent,
                weight: f64::from(qa) * f64::from(da) * w,
                query_activation: qa,
                doc_activation: da,
                query: qh,
                doc: dh,
            })
        })
        .collect();
    out.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.latent.cmp(&b.latent)));
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// A run's token artefacts
// ---------------------------------------------------------------------------------------

/// The parts of `results.json` the token views read. (A `--representation tokens`
/// report has `null` pooled fields that [`crate::pipeline::Report::load`] rejects.)
#[derive(Deserialize)]
struct ReportView {
    #[serde(default)]
    artifacts: Artifacts,
    #[serde(default)]
    tokens: Option<TokenK>,
}

#[derive(Deserialize)]
struct TokenK {
    k: usize,
}

/// The token-level artefacts of a `latent-terms run` report, reopened: token SAE, token
/// stores, token index, and the texts that were encoded.
pub struct TokenRun {
    /// Where the run's artefacts are.
    pub artifacts: Artifacts,
    /// The token SAE.
    pub sae: SaeEncoder,
    /// Latents kept per token (the report's `tokens.k`).
    pub k: usize,
    /// Token store of the corpus.
    pub corpus: TokenStore,
    /// Token store of the queries.
    pub queries: TokenStore,
    /// The token-level latent-term index.
    pub index: Index,
    /// Documents' encoded texts (`full_text()`), by id.
    pub docs: HashMap<String, String>,
    /// Query texts by id.
    pub query_text: HashMap<String, String>,
}

impl TokenRun {
    /// Opens `DIR/results.json` and its token artefacts.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a report without the token representation; reading errors.
    pub fn open(report_dir: &Path) -> Result<Self> {
        let path = report_dir.join("results.json");
        crate::pipeline::check_report_file(&path)?;
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let report: ReportView = serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        let a = &report.artifacts;
        let k = report.tokens.as_ref().map(|t| t.k);
        let (Some(k), false) = (k, a.token_sae.is_empty() || a.corpus_tokens.is_empty()) else {
            return Err(Error::Invalid(format!(
                "{}: the report has no token representation; run `latent-terms run --representation tokens`",
                report_dir.display()
            )));
        };
        let dataset = BeirDataset::open(&a.dataset)?;
        let mut docs = HashMap::new();
        for d in dataset.corpus()? {
            let d = d?;
            docs.insert(d.id.clone(), d.full_text());
        }
        let query_text = dataset
            .queries()?
            .into_iter()
            .map(|q| (q.id, q.text))
            .collect();
        Ok(TokenRun {
            sae: SaeEncoder::load(&a.token_sae)?,
            k,
            corpus: TokenStore::open(&a.corpus_tokens)?,
            queries: TokenStore::open(&a.query_tokens)?,
            index: Index::open(&a.token_index)?,
            docs,
            query_text,
            artifacts: report.artifacts,
        })
    }

    /// A document's encoded text.
    pub fn doc_text(&self, id: &str) -> Option<String> {
        self.docs.get(id).cloned()
    }

    /// Token cards of every latent that fires on the corpus: `top` firings each.
    ///
    /// # Errors
    /// As [`top_tokens`] and [`token_cards`].
    pub fn cards(&self, top: usize, options: &CardOptions) -> Result<TokenCardSet> {
        let text_of = |id: &str| self.doc_text(id);
        let tops = top_tokens(
            &self.sae,
            &self.corpus,
            &text_of,
            &TopOptions { k: self.k, top },
        )?;
        let cards = token_cards(&tops, &text_of, options)?;
        Ok(TokenCardSet {
            top,
            k: self.k,
            rule: options.rule,
            shares: ClassShares::of(&cards),
            cards,
        })
    }

    /// The shared latents of query `qid` and document `doc`, with their words, weighted
    /// by their IDF in the token index and limited to its latents (stop latents are not
    /// in it).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an id missing from a store or the dataset.
    pub fn explain(&self, qid: &str, doc: &str) -> Result<Vec<SharedLatent>> {
        let q = read_by_id(&self.queries, qid)?;
        let d = read_by_id(&self.corpus, doc)?;
        let qt = self
            .query_text
            .get(qid)
            .ok_or_else(|| Error::Invalid(format!("query {qid:?} is not in the dataset")))?;
        let dt = self
            .docs
            .get(doc)
            .ok_or_else(|| Error::Invalid(format!("document {doc:?} is not in the dataset")))?;
        let idf = |l: u32| {
            let df = self.index.doc_freq(l).ok()?;
            (df > 0).then(|| self.idf(l))
        };
        shared_latents(&self.sae, self.k, (&q, qt), (&d, dt), &idf)
    }

    /// The IDF of a latent in the token index (BM25's `ln(1 + (N − df + 0.5)/(df + 0.5))`).
    pub fn idf(&self, latent: u32) -> f64 {
        let n = self.index.num_docs() as f64;
        let df = self.index.doc_freq(latent).unwrap_or(0) as f64;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }
}

/// One text of a store by id.
fn read_by_id(store: &TokenStore, id: &str) -> Result<TokenVectors> {
    let i = store.ids().iter().position(|x| x == id).ok_or_else(|| {
        Error::Invalid(format!(
            "{id:?} is not in the token store {}",
            store.path().display()
        ))
    })?;
    Ok(store.read_text(i)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use latent_terms_encoders::{SpecialTokens, StoreDtype, TokenStoreMetadata, TokenStoreWriter};
    use latent_terms_sae::{SaeConfig, SaeKind, SaeWeights};

    use super::*;

    /// Latent 0 = +x, 1 = −x, 2 = +y, 3 = −y (inputs of dimension 2).
    fn sae() -> SaeEncoder {
        SaeEncoder::new(SaeWeights {
            config: SaeConfig::new(SaeKind::TopK, 2, 4, 1).unwrap(),
            w_enc: vec![1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0, -1.0],
            b_enc: vec![0.0; 4],
            w_dec: vec![1.0, 0.0, -1.0, 0.0, 0.0, 1.0, 0.0, -1.0],
            b_dec: vec![0.0; 2],
        })
        .unwrap()
    }

    const D1: &str = "Sea otters crack shells. They float.";
    const D2: &str = "Rivers are cold. Otters float on rivers, and otters sleep.";
    const Q: &str = "do otters float?";

    /// `(byte span, row)` per token.
    fn tokens(id: &str, toks: &[((u32, u32), [f32; 2])]) -> TokenVectors {
        TokenVectors {
            id: id.into(),
            dim: 2,
            token_ids: (0..toks.len() as u32).collect(),
            offsets: toks.iter().map(|t| t.0).collect(),
            data: toks.iter().flat_map(|t| t.1).collect(),
        }
    }

    fn corpus() -> Vec<TokenVectors> {
        vec![
            tokens(
                "d1",
                &[
                    ((0, 3), [0.0, 1.0]),    // Sea: latent 2
                    ((4, 6), [3.0, 0.0]),    // "ot" of otters: latent 0 at 3
                    ((6, 10), [2.0, 0.0]),   // "##ters": same word, counts once
                    ((11, 16), [0.0, -1.0]), // crack: latent 3
                    ((17, 23), [1.0, 0.0]),  // shells: latent 0 at 1
                    ((30, 35), [0.0, 2.0]),  // float: latent 2
                ],
            ),
            tokens(
                "d2",
                &[
                    ((0, 6), [0.0, -2.0]),   // Rivers: latent 3
                    ((17, 23), [2.5, 0.0]),  // Otters: latent 0 at 2.5
                    ((24, 29), [0.0, 1.5]),  // float: latent 2
                    ((33, 39), [0.0, -1.0]), // rivers: latent 3
                    ((45, 51), [2.0, 0.0]),  // otters: latent 0 at 2
                ],
            ),
        ]
    }

    fn store(dir: &Path, name: &str, texts: &[TokenVectors]) -> TokenStore {
        let meta = TokenStoreMetadata {
            model: "hand".into(),
            dim: 2,
            max_length: 64,
            special_tokens: SpecialTokens::Drop,
            prefix: String::new(),
            kind: "passage".into(),
        };
        let mut w = TokenStoreWriter::create(dir.join(name), meta, StoreDtype::F32).unwrap();
        texts.iter().for_each(|t| w.append(t).unwrap());
        TokenStore::open(w.finish().unwrap()).unwrap()
    }

    fn text_of(id: &str) -> Option<String> {
        match id {
            "d1" => Some(D1.into()),
            "d2" => Some(D2.into()),
            _ => None,
        }
    }

    #[test]
    fn word_spans_widen_sub_words_and_reject_bad_offsets() {
        assert_eq!(word_span(D1, 6, 10), Some((4, 10)));
        assert_eq!(word_span(D1, 4, 6), Some((4, 10)));
        assert_eq!(word_span(D1, 3, 6), Some((4, 10)), "leading space trimmed");
        assert_eq!(
            word_span(D1, 23, 24),
            Some((23, 24)),
            "punctuation kept as is"
        );
        assert_eq!(word_span(D1, 0, 0), None);
        assert_eq!(word_span(D1, 30, 99), None);
        let t = "café au lait";
        assert_eq!(word_span(t, 0, 3), Some((0, 5)));
        assert_eq!(word_span(t, 0, 3).map(|(s, e)| &t[s..e]), Some("café"));
        assert_eq!(word_span(t, 4, 5), None, "inside a character");
    }

    #[test]
    fn contexts_are_the_sentence_within_a_word_window() {
        let c = highlight(D2, (17, 23), 12);
        assert_eq!(c.marked, "«Otters» float on rivers, and otters sleep.");
        let c = highlight(D2, (33, 39), 2);
        assert_eq!(c.before, "…float on ");
        assert_eq!(c.after, ", and…");
        assert_eq!(c.marked, "…float on «rivers», and…");
        let c = highlight("a <b>\n\nc", (2, 5), 12);
        assert_eq!(c.marked, "a «<b>»");
        assert_eq!(c.html(), "a <mark>&lt;b&gt;</mark>");
        assert_eq!(highlight(D1, (3, 99), 5).marked, "");
    }

    #[test]
    fn top_tokens_keeps_the_strongest_words_per_latent() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "c.tokens", &corpus());
        let tops = top_tokens(&sae(), &s, &text_of, &TopOptions { k: 1, top: 2 }).unwrap();
        let latents: Vec<u32> = tops.iter().map(|t| t.latent).collect();
        assert_eq!(latents, vec![0, 2, 3], "latent 1 never fires");
        let l0 = &tops[0];
        assert_eq!(l0.fired, 4, "otters, shells, Otters, otters");
        assert_eq!(
            l0.top,
            vec![("d1".into(), 3.0, (4, 10)), ("d2".into(), 2.5, (17, 23))]
        );
        let cards = token_cards(&tops, &text_of, &CardOptions::default()).unwrap();
        let marked: Vec<&str> = cards[0]
            .contexts
            .iter()
            .map(|c| c.marked.as_str())
            .collect();
        assert_eq!(
            marked,
            [
                "Sea «otters» crack shells.",
                "«Otters» float on rivers, and otters sleep."
            ]
        );
        assert_eq!(cards[0].forms, vec![("otters".into(), 2)]);
        // With only two firings every latent is rare under the default rule.
        assert!(cards.iter().all(|c| c.class == LatentClass::Rare));
        let rule = ClassRule {
            min_firings: 2,
            ..ClassRule::default()
        };
        let cards = token_cards(&tops, &text_of, &CardOptions { window: 12, rule }).unwrap();
        let classes: Vec<LatentClass> = cards.iter().map(|c| c.class).collect();
        assert_eq!(
            classes,
            [
                LatentClass::Lexical,
                LatentClass::Lexical,
                LatentClass::Broad
            ]
        );
        assert_eq!(
            cards[2].forms,
            vec![("crack".into(), 1), ("rivers".into(), 1)]
        );
        let shares = ClassShares::of(&cards);
        assert_eq!((shares.lexical, shares.narrow, shares.broad), (2, 0, 1));
        assert_eq!(shares.punctuation, 0);
        assert!(
            shares
                .line()
                .starts_with("classes of 3 latents: lexical 2 (66.7%)")
        );
    }

    #[test]
    fn missing_texts_and_wrong_dimensions_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "c.tokens", &corpus());
        let none = |_: &str| None;
        let options = TopOptions { k: 1, top: 2 };
        assert!(matches!(
            top_tokens(&sae(), &s, &none, &options),
            Err(Error::Invalid(_))
        ));
        let wide = SaeEncoder::new(SaeWeights {
            config: SaeConfig::new(SaeKind::TopK, 3, 2, 1).unwrap(),
            w_enc: vec![0.0; 6],
            b_enc: vec![0.0; 2],
            w_dec: vec![0.0; 6],
            b_dec: vec![0.0; 3],
        })
        .unwrap();
        assert!(matches!(
            top_tokens(&wide, &s, &text_of, &options),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn classes_follow_the_documented_rule() {
        let rule = ClassRule::default();
        let words = |spec: &[(&str, usize)]| -> Vec<String> {
            spec.iter()
                .flat_map(|&(w, n)| std::iter::repeat_n(w.to_owned(), n))
                .collect()
        };
        // 16 of 20 are one form (case folded): lexical.
        let w = words(&[("Otter", 10), ("otter", 6), ("otters", 4)]);
        assert_eq!(classify(&w, &rule), LatentClass::Lexical);
        // 15 of 20: not lexical; 5 forms ≤ 20/4: narrow.
        let w = words(&[
            ("otter", 15),
            ("seal", 2),
            ("walrus", 1),
            ("beaver", 1),
            ("mink", 1),
        ]);
        assert_eq!(classify(&w, &rule), LatentClass::Narrow);
        // 6 forms > 5: broad.
        let w = words(&[("a", 15), ("b", 1), ("c", 1), ("d", 1), ("e", 1), ("f", 1)]);
        assert_eq!(classify(&w, &rule), LatentClass::Broad);
        assert_eq!(classify(&words(&[("x", 4)]), &rule), LatentClass::Rare);
        assert_eq!(form_entropy(&form_counts(&words(&[("x", 4)]))), 0.0);
        let spread = form_counts(&["a", "b", "c", "d"]);
        assert!((form_entropy(&spread) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn shared_latents_list_the_words_of_both_texts() {
        let docs = corpus();
        let q = tokens(
            "q",
            &[
                ((0, 2), [0.0, 0.1]),
                ((3, 9), [1.5, 0.0]),
                ((10, 15), [0.0, 1.0]),
            ],
        );
        let all = |_: u32| Some(1.0);
        let shared = shared_latents(&sae(), 1, (&q, Q), (&docs[1], D2), &all).unwrap();
        let latents: Vec<u32> = shared.iter().map(|s| s.latent).collect();
        // latent 0: 1.5 × (2.5 + 2) = 6.75; latent 2: (0.1 + 1) × 1.5 = 1.65.
        assert_eq!(latents, vec![0, 2]);
        let words = |h: &[WordHit]| h.iter().map(|w| w.word.clone()).collect::<Vec<_>>();
        assert_eq!(words(&shared[0].query), ["otters"]);
        assert_eq!(words(&shared[0].doc), ["Otters", "otters"]);
        assert_eq!(words(&shared[1].query), ["float", "do"]);
        assert!((shared[0].doc_activation - 4.5).abs() < 1e-6);
        assert!((shared[0].weight - 6.75).abs() < 1e-5);
        // Weights reorder the list; `None` leaves a latent out.
        let favour_2 = |l: u32| Some(if l == 2 { 10.0 } else { 1.0 });
        let shared = shared_latents(&sae(), 1, (&q, Q), (&docs[1], D2), &favour_2).unwrap();
        assert_eq!(shared.iter().map(|s| s.latent).collect::<Vec<_>>(), [2, 0]);
        let no_zero = |l: u32| (l != 0).then_some(1.0);
        let shared = shared_latents(&sae(), 1, (&q, Q), (&docs[1], D2), &no_zero).unwrap();
        assert_eq!(shared.len(), 1);
    }
}
