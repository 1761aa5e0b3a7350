//! How much could each pruning scheme skip on a real index, at the final threshold?
//!
//! For each query (BM25 or CL-SR, paper variant, with the token pipeline's defaults) it
//! scores every document, takes the k-th score θ, and reports:
//! * MaxScore: the share of the query's postings in essential lists, with exact
//!   per-term maximum contributions and θ known from the start (the best case);
//! * per document: the share of documents whose Σ over their query terms of those
//!   maxima reaches θ;
//! * block-max over document-ordered blocks (BMP): for blocks of B consecutive
//!   documents, the share of blocks whose Σ over query terms of the block's largest
//!   contribution reaches θ — the blocks a BMP traversal must open even with θ known.
//!
//! ```text
//! cargo run --release -p latent-terms-sparse-index --example pruning_headroom -- \
//!     INDEX QUERIES.jsonl [bm25|clsr] [QUERIES_USED]
//! ```
//!
//! Document lengths are `SumOfWeights`, as both scorers here use.

use std::collections::HashMap;
use std::io::BufReader;

use latent_terms_sparse_index::{
    Bm25, Bm25Params, ClSr, ClSrParams, DocLength, Index, Result, Scorer, export,
};

const BLOCKS: [usize; 4] = [4, 16, 64, 256];

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(index_path), Some(query_path)) = (args.get(1), args.get(2)) else {
        return Err("usage: pruning_headroom INDEX QUERIES [bm25|clsr] [N]".into());
    };
    let bm25 = args.get(3).is_none_or(|s| s == "bm25");
    let used: usize = args.get(4).map_or(Ok(60), |s| s.parse())?;
    let index = Index::open(index_path)?;
    let queries = export::read_weighted_queries(
        BufReader::new(std::fs::File::open(query_path)?),
        export::TermNames::for_index(&index),
        None,
    )?;
    let scorer: Box<dyn Scorer> = if bm25 {
        Box::new(Bm25::new(Bm25Params {
            k1: 1.5,
            b: 1.0,
            ..Default::default()
        })?)
    } else {
        Box::new(ClSr::new(ClSrParams {
            k1: 1.2,
            b: 1.0,
            k2: 5.0,
            ..Default::default()
        })?)
    };
    if scorer.doc_length() != DocLength::SumOfWeights {
        return Err("this analysis assumes SumOfWeights lengths".into());
    }
    let n = index.max_doc() as usize;
    let stats = index.collection_stats(DocLength::SumOfWeights)?;
    let postings: HashMap<u32, Vec<(u32, f32)>> = index
        .term_ids()
        .into_iter()
        .map(|t| Ok((t, index.postings(t)?)))
        .collect::<Result<_>>()?;
    let mut length = vec![0f64; n];
    for p in postings.values() {
        for &(d, w) in p {
            length[d as usize] += f64::from(w);
        }
    }
    let idf = |df: usize| -> f32 {
        let (n, df) = (stats.num_docs as f64, df as f64);
        (if bm25 {
            (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
        } else {
            (n / (1.0 + df)).ln()
        }) as f32
    };
    for k in [10usize, 1000] {
        let (mut essential, mut per_doc) = (0f64, 0f64);
        let mut blocks = [0f64; BLOCKS.len()];
        let used = queries.len().min(used);
        for q in queries.iter().take(used) {
            let mut score = vec![0f64; n];
            let mut lists: Vec<Vec<(u32, f64)>> = Vec::new();
            for (t, qw) in q.query.iter() {
                let Some(p) = postings.get(&t) else { continue };
                let m = scorer.query_factor(qw) * idf(p.len());
                let c: Vec<(u32, f64)> = p
                    .iter()
                    .map(|&(d, w)| {
                        let f =
                            scorer.doc_factor(w, length[d as usize] as f32, stats.avg_doc_length);
                        (d, f64::from(m * f))
                    })
                    .collect();
                for &(d, v) in &c {
                    score[d as usize] += v;
                }
                lists.push(c);
            }
            let mut sorted = score.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let theta = sorted[k.min(n) - 1];
            let mut maxima: Vec<(f64, usize)> = lists
                .iter()
                .map(|c| (c.iter().map(|x| x.1).fold(0.0, f64::max), c.len()))
                .collect();
            let mut bound = vec![0f64; n];
            for (c, &(max, _)) in lists.iter().zip(&maxima) {
                for &(d, _) in c {
                    bound[d as usize] += max;
                }
            }
            per_doc += bound.iter().filter(|&&u| u >= theta).count() as f64 / n as f64;
            maxima.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (mut prefix, mut skipped, mut all) = (0f64, 0usize, 0usize);
            for &(max, df) in &maxima {
                all += df;
                if prefix + max < theta {
                    prefix += max;
                    skipped += df;
                }
            }
            essential += 1.0 - skipped as f64 / all.max(1) as f64;
            for (slot, &b) in blocks.iter_mut().zip(&BLOCKS) {
                let nb = n.div_ceil(b);
                let mut ub = vec![0f64; nb];
                let mut block_max = vec![0f64; nb];
                for c in &lists {
                    block_max.iter_mut().for_each(|x| *x = 0.0);
                    for &(d, v) in c {
                        let x = &mut block_max[d as usize / b];
                        *x = x.max(v);
                    }
                    ub.iter_mut().zip(&block_max).for_each(|(u, m)| *u += m);
                }
                *slot += ub.iter().filter(|&&u| u >= theta).count() as f64 / nb as f64;
            }
        }
        let used = used as f64;
        let blocks: Vec<String> = BLOCKS
            .iter()
            .zip(&blocks)
            .map(|(b, s)| format!("B={b}: {:.3}", s / used))
            .collect();
        println!(
            "top-{k}, {used} queries: MaxScore essential postings {:.3}; documents whose bound reaches the k-th score {:.3}; blocks whose bound reaches it {}",
            essential / used,
            per_doc / used,
            blocks.join(", ")
        );
    }
    Ok(())
}
