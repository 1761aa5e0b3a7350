//! Interpretability and control of latent terms (CL-SR §4, Kang et al. §3.3).
//!
//! * [`cards`]: every latent's document frequency, IDF and top-activating documents, with a
//!   description from a [`LatentDescriber`](describe::LatentDescriber).
//! * [`describe`]: the built-in keyword describer (weighted log-odds of the words of a
//!   latent's top documents against the corpus) and JSON import/export of descriptions
//!   written elsewhere (for example by an LLM), keyed by latent id.
//! * [`explain`]: a document as its top latents by activation × IDF, and a query–document
//!   match as its shared latents with their share of the BM25 or CL-SR score.
//! * [`steer`]: amplify or suppress latents of a query and decode through the SAE to a new
//!   dense embedding, or edit the sparse query directly; and the Kang et al. experiment.
//! * [`intrusion`]: the intrusion test (9 top-activating passages + 1 intruder) with a
//!   pluggable [`Judge`](intrusion::Judge) and a centroid-distance baseline judge.
//! * [`tokens`]: token-level latents (`--representation tokens`) read from the words they
//!   fire on: each latent's top-activating words highlighted in their sentences, the words
//!   where a query and a document share a latent, and a lexical / narrow / broad class.
//! * [`explorer`]: a static, self-contained HTML site over all of the above.
//! * [`collection`]: reopens a `latent-terms run` report's artefacts for these views.
//!
//! ```
//! use latent_terms::interpret::cards::{CardOptions, cards};
//! use latent_terms::interpret::describe::{KeywordDescriber, LatentDescriber};
//! use latent_terms::pipeline::LatentIndex;
//! use latent_terms::sae::SparseCode;
//!
//! let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
//! let code = |l: u32, v: f32| SparseCode { indices: vec![l], values: vec![v] };
//! let index = LatentIndex::build(&ids, &[code(7, 0.9), code(7, 0.4), code(3, 1.0)], None)?;
//! let texts = [("a", "otters swim in rivers"), ("b", "river otters eat fish"), ("c", "tapirs browse")];
//! let describer = KeywordDescriber::new(texts.iter().map(|(i, t)| (i.to_string(), t.to_string())));
//! let mut cards = cards(index.index(), &CardOptions::default())?;
//! describer.describe_all(&mut cards)?;
//! let card = cards.iter().find(|c| c.latent == 7).expect("latent 7 is used");
//! assert_eq!(card.doc_freq, 2);
//! assert_eq!(card.top_docs[0].id, "a");
//! assert!(card.description.as_ref().expect("described").text.contains("otters"));
//! # Ok::<(), latent_terms::Error>(())
//! ```

pub mod cards;
pub mod collection;
pub mod describe;
pub mod explain;
pub mod explorer;
pub mod intrusion;
pub mod steer;
pub mod tokens;

/// HTML-escapes text for element content and quoted attribute values.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `text`, with an ellipsis when cut (for titles and tables).
pub fn snippet(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{}…", head.trim_end())
    } else {
        head
    }
}
