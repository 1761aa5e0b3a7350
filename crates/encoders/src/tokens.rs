//! Token-level output: one raw `last_hidden_state` row per kept token.

use std::str::FromStr;

use tokenizers::Encoding;

use crate::error::{Error, Result};

/// Which tokens' vectors [`crate::Encoder::encode_tokens`] returns.
///
/// Special tokens are those the tokenizer's post-processor adds (`[CLS]`, `[SEP]`,
/// `<s>`, ...), as flagged by its special-tokens mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SpecialTokens {
    /// Content tokens only: special tokens and tokens lying inside the query or
    /// passage prefix are dropped (the default).
    #[default]
    Drop,
    /// Every token the model sees, special and prefix tokens included.
    Keep,
}

impl SpecialTokens {
    /// `"drop"` or `"keep"` (the form [`FromStr`] accepts and stores record).
    pub fn as_str(self) -> &'static str {
        match self {
            SpecialTokens::Drop => "drop",
            SpecialTokens::Keep => "keep",
        }
    }
}

impl std::fmt::Display for SpecialTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SpecialTokens {
    type Err = Error;

    /// Parses `"drop"` or `"keep"` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "drop" => Ok(SpecialTokens::Drop),
            "keep" => Ok(SpecialTokens::Keep),
            other => Err(Error::Config(format!(
                "unknown special-tokens policy {other:?} (expected \"drop\" or \"keep\")"
            ))),
        }
    }
}

/// One text's token vectors: the raw `last_hidden_state` rows of its kept tokens
/// (no pooling, no normalisation), with their token ids and byte offsets.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenVectors {
    /// The text's id.
    pub id: String,
    /// Vector dimension.
    pub dim: usize,
    /// Token id of each kept token.
    pub token_ids: Vec<u32>,
    /// Byte range `[start, end)` of each kept token in the original text (without
    /// the prefix); `(0, 0)` for special tokens and for tokens inside the prefix
    /// when they are kept.
    pub offsets: Vec<(u32, u32)>,
    /// `token_ids.len() x dim` values, row-major.
    pub data: Vec<f32>,
}

impl TokenVectors {
    /// An empty value (no tokens) for `id`.
    pub fn empty(id: impl Into<String>, dim: usize) -> Self {
        TokenVectors {
            id: id.into(),
            dim,
            token_ids: Vec::new(),
            offsets: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.token_ids.len()
    }

    /// Whether no token was kept.
    pub fn is_empty(&self) -> bool {
        self.token_ids.is_empty()
    }

    /// The vector of token `i`.
    ///
    /// # Panics
    /// If `i >= self.len()` (or `data` is shorter than `len() * dim`).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Checks that the tables and the data agree (`offsets.len() == token_ids.len()`,
    /// `data.len() == len() * dim`).
    ///
    /// # Errors
    /// [`Error::Shape`] describing the disagreement.
    pub fn check_shape(&self) -> Result<()> {
        let n = self.token_ids.len();
        if self.offsets.len() != n {
            return Err(Error::Shape(format!(
                "text {:?}: {} token ids but {} offsets",
                self.id,
                n,
                self.offsets.len()
            )));
        }
        if n.checked_mul(self.dim) != Some(self.data.len()) {
            return Err(Error::Shape(format!(
                "text {:?}: {} values for {} tokens of dimension {}",
                self.id,
                self.data.len(),
                n,
                self.dim
            )));
        }
        Ok(())
    }
}

/// Picks the kept tokens of one encoded text.
///
/// `rows` is `encoding.len() x dim`; `prefix_len` is the byte length of the prefix
/// put in front of the text before tokenising. A token is in the prefix when it
/// ends at or before `prefix_len` (with a non-empty prefix); a token straddling the
/// prefix boundary is content, its start clamped to 0.
pub(crate) fn select(
    id: &str,
    enc: &Encoding,
    rows: &[f32],
    dim: usize,
    prefix_len: usize,
    policy: SpecialTokens,
) -> TokenVectors {
    let special = enc.get_special_tokens_mask();
    let mut out = TokenVectors::empty(id, dim);
    for (k, (&tid, &(start, end))) in enc.get_ids().iter().zip(enc.get_offsets()).enumerate() {
        let is_special = special.get(k).is_some_and(|&m| m != 0);
        let in_prefix = prefix_len > 0 && end <= prefix_len;
        let offsets = if is_special || in_prefix {
            if policy == SpecialTokens::Drop {
                continue;
            }
            (0, 0)
        } else {
            (
                to_u32(start.saturating_sub(prefix_len)),
                to_u32(end.saturating_sub(prefix_len)),
            )
        };
        out.token_ids.push(tid);
        out.offsets.push(offsets);
        out.data.extend_from_slice(&rows[k * dim..(k + 1) * dim]);
    }
    out
}

fn to_u32(x: usize) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_strings() {
        for p in [SpecialTokens::Drop, SpecialTokens::Keep] {
            assert_eq!(p.as_str().parse::<SpecialTokens>().unwrap(), p);
        }
        assert_eq!(
            " KEEP ".parse::<SpecialTokens>().unwrap(),
            SpecialTokens::Keep
        );
        assert!(matches!(
            "all".parse::<SpecialTokens>(),
            Err(Error::Config(_))
        ));
        assert_eq!(SpecialTokens::default(), SpecialTokens::Drop);
    }

    #[test]
    fn rows_and_shape() {
        let mut t = TokenVectors {
            id: "a".into(),
            dim: 2,
            token_ids: vec![5, 6],
            offsets: vec![(0, 1), (2, 3)],
            data: vec![1.0, 2.0, 3.0, 4.0],
        };
        assert_eq!(t.len(), 2);
        assert_eq!(t.row(1), [3.0, 4.0]);
        t.check_shape().unwrap();
        t.data.pop();
        assert!(matches!(t.check_shape(), Err(Error::Shape(_))));
        assert!(TokenVectors::empty("e", 3).is_empty());
    }
}
