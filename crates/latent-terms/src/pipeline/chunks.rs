//! Documents as several short windows: each window is embedded and encoded on its own,
//! and a document's latent terms are the max-pooled union of its windows' latents.
//!
//! One dense vector per document cannot hold every fact of a long list (the LIMIT
//! failure); a sparse vector can. Windows let the SAE see each fact in an embedding
//! where it dominates, and pooling keeps one sparse vector per document, so the index
//! stays a plain inverted index.

use std::collections::BTreeMap;

use latent_terms_sae::SparseCode;

/// Splits `text` into windows of `words` whitespace-separated words, starting every
/// `stride` words; the last window ends at the last word. A text of at most `words`
/// words is one window. `words` and `stride` are at least 1.
///
/// ```
/// use latent_terms::pipeline::word_windows;
///
/// assert_eq!(word_windows("a b c d e", 3, 2), vec!["a b c", "c d e"]);
/// assert_eq!(word_windows("a b", 3, 2), vec!["a b"]);
/// assert!(word_windows("  ", 3, 2).is_empty());
/// ```
pub fn word_windows(text: &str, words: usize, stride: usize) -> Vec<String> {
    let (words, stride) = (words.max(1), stride.max(1));
    let all: Vec<&str> = text.split_whitespace().collect();
    if all.is_empty() {
        return Vec::new();
    }
    if all.len() <= words {
        return vec![all.join(" ")];
    }
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + words).min(all.len());
        out.push(all[start..end].join(" "));
        if end == all.len() {
            break;
        }
        start += stride;
        if start + words > all.len() {
            // The tail gets a full-length window ending at the last word.
            start = all.len() - words;
        }
    }
    out
}

/// The id of window `n` of document `doc` in the windows' embeddings store.
pub fn window_id(doc: &str, n: usize) -> String {
    format!("{doc}#{n}")
}

/// The document a window id belongs to (the inverse of [`window_id`]).
pub fn window_owner(id: &str) -> &str {
    id.rsplit_once('#').map_or(id, |(doc, _)| doc)
}

/// Max-pools codes latent by latent: a latent's activation is its largest over `codes`.
///
/// ```
/// use latent_terms::pipeline::max_pool;
/// use latent_terms::sae::SparseCode;
///
/// let a = SparseCode { indices: vec![1, 4], values: vec![0.5, 0.2] };
/// let b = SparseCode { indices: vec![4, 7], values: vec![0.9, 0.1] };
/// let pooled = max_pool([&a, &b]);
/// assert_eq!(pooled.indices, vec![1, 4, 7]);
/// assert_eq!(pooled.values, vec![0.5, 0.9, 0.1]);
/// ```
pub fn max_pool<'a>(codes: impl IntoIterator<Item = &'a SparseCode>) -> SparseCode {
    let mut best: BTreeMap<u32, f32> = BTreeMap::new();
    for code in codes {
        for (latent, value) in code.iter() {
            let slot = best.entry(latent).or_insert(value);
            if value > *slot {
                *slot = value;
            }
        }
    }
    SparseCode {
        indices: best.keys().copied().collect(),
        values: best.values().copied().collect(),
    }
}

/// The `k` strongest latents of `code` (all of them when it has at most `k`), in latent order.
pub fn strongest(code: &SparseCode, k: usize) -> SparseCode {
    if code.len() <= k {
        return code.clone();
    }
    let mut order: Vec<usize> = (0..code.len()).collect();
    order.sort_by(|&a, &b| code.values[b].total_cmp(&code.values[a]));
    order.truncate(k);
    order.sort_unstable();
    SparseCode {
        indices: order.iter().map(|&i| code.indices[i]).collect(),
        values: order.iter().map(|&i| code.values[i]).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_word_and_have_the_set_length() {
        let text = (0..23).map(|i| i.to_string()).collect::<Vec<_>>().join(" ");
        let w = word_windows(&text, 8, 5);
        assert!(w.iter().all(|w| w.split(' ').count() == 8));
        assert!(w.first().is_some_and(|f| f.starts_with("0 ")));
        assert!(w.last().is_some_and(|l| l.ends_with(" 22")));
        let covered: std::collections::BTreeSet<&str> =
            w.iter().flat_map(|w| w.split(' ')).collect();
        assert_eq!(covered.len(), 23);
    }

    #[test]
    fn strongest_keeps_the_largest_in_latent_order() {
        let code = SparseCode {
            indices: vec![1, 2, 3],
            values: vec![0.3, 0.1, 0.2],
        };
        let top = strongest(&code, 2);
        assert_eq!(top.indices, vec![1, 3]);
        assert_eq!(top.values, vec![0.3, 0.2]);
    }

    #[test]
    fn window_ids_round_trip_even_with_hashes_in_the_doc_id() {
        assert_eq!(window_owner(&window_id("a#b", 3)), "a#b");
        assert_eq!(window_owner("plain"), "plain");
    }
}
