//! Stage 1: token stores of the corpus and the queries.

use std::path::Path;

use latent_terms_encoders::{Encoder, SpecialTokens, StoreDtype, TextKind};

use super::TokenStores;
use crate::error::{Error, Result};
use crate::pipeline::stages::Context;
use crate::pipeline::{CacheEntry, CacheKey, EncodeTargets, Progress, encode_texts};

/// Where the token stores of a run are: given (`--corpus-tokens`, `--query-tokens`) or
/// in the cache under the model, the dataset and the token settings.
pub(crate) fn store_paths(ctx: &Context<'_>) -> Result<TokenStores> {
    if let Some((corpus, queries)) = &ctx.inputs.token_stores {
        return Ok(TokenStores {
            key: CacheKey::new("token-stores-given")
                .file(corpus)?
                .file(queries)?
                .finish(),
            corpus: corpus.clone(),
            queries: queries.clone(),
            entry: None,
        });
    }
    let t = &ctx.config.tokens;
    let key = CacheKey::new("token-stores")
        .dir(&ctx.inputs.model)?
        .dir(ctx.dataset.root())?
        .str(&t.special_tokens)
        .num(t.max_length as u64)
        .str(&ctx.config.encoder.text_key())
        .finish();
    let dir = ctx.inputs.cache.join(format!("tokens-{key}"));
    let (corpus, queries) = (dir.join("corpus.tokens"), dir.join("queries.tokens"));
    Ok(TokenStores {
        entry: Some(CacheEntry::new(&key, [corpus.clone(), queries.clone()])),
        corpus,
        queries,
        key,
    })
}

/// Stage 1: the corpus and every query into token stores and, when `pooled` paths are
/// given and the token encoder's maximum length is the pooled encoder's, into pooled
/// embeddings stores too, from the same forward pass. Returns the pooled paths it could
/// not write (to be encoded apart).
pub(crate) fn encode_stores<'p>(
    ctx: &Context<'_>,
    pooled_encoder: &Encoder,
    stores: &TokenStores,
    pooled: Option<(&'p Path, &'p Path)>,
    progress: &dyn Progress,
) -> Result<Option<(&'p Path, &'p Path)>> {
    let (config, t) = (ctx.config, &ctx.config.tokens);
    let policy: SpecialTokens = t.special_tokens.parse()?;
    let mut builder = config
        .encoder
        .builder(&ctx.inputs.model)?
        .special_tokens(policy);
    if t.max_length > 0 {
        builder = builder.max_length(t.max_length);
    }
    let encoder = builder.build()?;
    let (both, rest) = match pooled {
        Some(p) if encoder.info().max_length == pooled_encoder.info().max_length => (Some(p), None),
        other => (None, other),
    };
    for dir in [stores.corpus.parent(), stores.queries.parent()]
        .into_iter()
        .flatten()
    {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    progress.begin("encoding corpus (tokens)", None);
    let docs = ctx
        .dataset
        .corpus()?
        .map(|d| d.map(|d| (d.id.clone(), d.full_text())));
    encode_texts(
        &encoder,
        TextKind::Passage,
        docs,
        EncodeTargets {
            pooled: both.map(|b| (b.0, StoreDtype::F32)),
            tokens: Some(&stores.corpus),
        },
        progress,
    )?;
    progress.end();
    progress.begin(
        "encoding queries (tokens)",
        Some(ctx.all_queries.len() as u64),
    );
    let queries = ctx
        .all_queries
        .iter()
        .map(|q| Ok((q.id.clone(), q.text.clone())));
    encode_texts(
        &encoder,
        TextKind::Query,
        queries,
        EncodeTargets {
            pooled: both.map(|b| (b.1, StoreDtype::F32)),
            tokens: Some(&stores.queries),
        },
        progress,
    )?;
    progress.end();
    Ok(rest)
}
