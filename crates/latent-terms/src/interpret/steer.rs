//! Steering: edit a query's latents (amplify, suppress, add, set) and decode through the
//! SAE to a new dense embedding, or edit the sparse query directly; and Kang et al.'s
//! experiment (§3.3): amplify the latents the relevant documents activate most, by
//! increasing amounts, and measure MRR@10 of dense retrieval with the steered query.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;

use latent_terms_encoders::{Embeddings, Metric, SearchOptions, search};
use latent_terms_eval::{Qrels, Run};
use latent_terms_sae::{EncodeOptions, SaeEncoder, SparseCode};
use latent_terms_sparse_index::Query;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pipeline::reciprocal_rank_at;
use crate::plot::{LineChart, Scale};

/// What to do to one latent.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum EditOp {
    /// Multiply its activation (0 suppresses it; an inactive latent stays inactive).
    Scale(f32),
    /// Add to its activation (activates an inactive latent).
    Add(f32),
    /// Set its activation.
    Set(f32),
}

/// One latent edit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Edit {
    /// Latent id.
    pub latent: u32,
    /// The edit.
    pub op: EditOp,
}

impl Edit {
    /// Multiplies `latent` by `factor`.
    pub fn amplify(latent: u32, factor: f32) -> Self {
        Edit {
            latent,
            op: EditOp::Scale(factor),
        }
    }

    /// Removes `latent`.
    pub fn suppress(latent: u32) -> Self {
        Edit {
            latent,
            op: EditOp::Scale(0.0),
        }
    }

    /// Adds `amount` to `latent`.
    pub fn add(latent: u32, amount: f32) -> Self {
        Edit {
            latent,
            op: EditOp::Add(amount),
        }
    }
}

impl FromStr for Edit {
    type Err = Error;

    /// `L*F` (scale latent L by F), `L+V` (add V), `L=V` (set), `-L` (suppress).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Invalid(format!("latent edit {s:?}: expected L*F, L+V, L=V or -L"));
        let s = s.trim();
        if let Some(l) = s.strip_prefix('-') {
            return Ok(Edit::suppress(l.parse().map_err(|_| bad())?));
        }
        let (pos, sep) = s
            .char_indices()
            .find(|(_, c)| matches!(c, '*' | '+' | '='))
            .ok_or_else(bad)?;
        let latent: u32 = s[..pos].parse().map_err(|_| bad())?;
        let v: f32 = s[pos + 1..].parse().map_err(|_| bad())?;
        if !v.is_finite() {
            return Err(bad());
        }
        let op = match sep {
            '*' => EditOp::Scale(v),
            '+' => EditOp::Add(v),
            _ => EditOp::Set(v),
        };
        Ok(Edit { latent, op })
    }
}

fn apply(pairs: impl Iterator<Item = (u32, f32)>, edits: &[Edit]) -> Result<Vec<(u32, f32)>> {
    let mut map: BTreeMap<u32, f32> = pairs.collect();
    for e in edits {
        let v = map.get(&e.latent).copied().unwrap_or(0.0);
        let new = match e.op {
            EditOp::Scale(f) => v * f,
            EditOp::Add(a) => v + a,
            EditOp::Set(x) => x,
        };
        if !new.is_finite() {
            return Err(Error::Invalid(format!(
                "editing latent {} gives {new}",
                e.latent
            )));
        }
        map.insert(e.latent, new);
    }
    Ok(map.into_iter().filter(|&(_, v)| v > 0.0).collect())
}

/// The code with `edits` applied in order; latents at or below 0 are dropped (SAE
/// activations are non-negative).
///
/// ```
/// use latent_terms::interpret::steer::{Edit, edit_code};
/// use latent_terms::sae::SparseCode;
///
/// let code = SparseCode { indices: vec![1, 4], values: vec![0.5, 0.25] };
/// let out = edit_code(&code, &[Edit::amplify(1, 3.0), Edit::suppress(4), Edit::add(7, 0.1)])?;
/// assert_eq!(out.indices, vec![1, 7]);
/// assert_eq!(out.values, vec![1.5, 0.1]);
/// # Ok::<(), latent_terms::Error>(())
/// ```
pub fn edit_code(code: &SparseCode, edits: &[Edit]) -> Result<SparseCode> {
    let pairs = apply(code.iter(), edits)?;
    Ok(SparseCode {
        indices: pairs.iter().map(|p| p.0).collect(),
        values: pairs.iter().map(|p| p.1).collect(),
    })
}

/// A sparse (latent-term) query with `edits` applied.
pub fn edit_query(query: &Query, edits: &[Edit]) -> Result<Query> {
    Ok(Query::new(apply(query.iter(), edits)?)?)
}

/// Encodes `x` with the SAE (top `k`), applies `edits` and decodes. With `keep_residual`
/// the SAE's reconstruction error is kept: `x + dec(edited) − dec(code)`, so an empty edit
/// returns `x` itself; otherwise the result is `dec(edited)`.
pub fn steer_embedding(
    sae: &SaeEncoder,
    x: &[f32],
    k: usize,
    edits: &[Edit],
    keep_residual: bool,
) -> Result<Vec<f32>> {
    if x.len() != sae.d_in() {
        return Err(Error::Invalid(format!(
            "embedding has {} dimensions, the SAE expects {}",
            x.len(),
            sae.d_in()
        )));
    }
    let code = sae
        .encode(x, &EncodeOptions::top_k(k))?
        .pop()
        .ok_or_else(|| Error::Invalid("the SAE returned no code".into()))?;
    let edited = edit_code(&code, edits)?;
    Ok(decode_steered(sae, x, &code, &edited, keep_residual))
}

fn decode_steered(
    sae: &SaeEncoder,
    x: &[f32],
    code: &SparseCode,
    edited: &SparseCode,
    keep_residual: bool,
) -> Vec<f32> {
    let new = sae.decode(std::slice::from_ref(edited));
    if !keep_residual {
        return new;
    }
    let old = sae.decode(std::slice::from_ref(code));
    x.iter()
        .zip(new.iter().zip(&old))
        .map(|(&x, (&n, &o))| x + n - o)
        .collect()
}

/// Settings of [`steering_experiment`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SteeringConfig {
    /// Top-k of the SAE encoding of queries and documents.
    pub k: usize,
    /// Latents amplified per query: those with the largest mean activation over the
    /// query's relevant documents.
    pub latents: usize,
    /// Amplification strengths α: latent `l` gets `+ α · mean activation of l in the
    /// relevant documents`.
    pub strengths: Vec<f32>,
}

/// MRR@10 at one strength.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SteeringRow {
    /// α.
    pub strength: f32,
    /// Steered query decoded through the SAE: `dec(h + Δ)`.
    pub decoded: f64,
    /// Steered query keeping the reconstruction error: `x + dec(h + Δ) − dec(h)`.
    pub residual: f64,
    /// Control: the residual-keeping query steered with another query's latents (those of
    /// the query half the list away, so not a neighbouring claim), amplified alike.
    pub control: f64,
}

/// The experiment's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SteeringReport {
    /// Settings.
    pub config: SteeringConfig,
    /// Queries steered (judged, with an embedding and a relevant document in the corpus).
    pub queries: usize,
    /// MRR@10 of the original dense query embeddings.
    pub dense: f64,
    /// One row per strength.
    pub rows: Vec<SteeringRow>,
}

/// Runs the steering experiment: for every judged query of `qrels` with an embedding in
/// `queries` and a relevant document in `corpus`, the `config.latents` latents with the
/// largest mean activation over its relevant documents are amplified by each strength,
/// and the steered embedding retrieves from `corpus` by dot product.
pub fn steering_experiment(
    sae: &SaeEncoder,
    corpus: &Embeddings,
    queries: &Embeddings,
    qrels: &Qrels,
    config: &SteeringConfig,
) -> Result<SteeringReport> {
    let dim = corpus.dim();
    if dim != sae.d_in() || queries.dim() != dim {
        return Err(Error::Invalid(format!(
            "dimensions differ: corpus {dim}, queries {}, SAE {}",
            queries.dim(),
            sae.d_in()
        )));
    }
    let doc_row: HashMap<&str, usize> = corpus
        .ids()
        .iter()
        .enumerate()
        .map(|(i, d)| (d.as_str(), i))
        .collect();
    let query_row: HashMap<&str, usize> = queries
        .ids()
        .iter()
        .enumerate()
        .map(|(i, d)| (d.as_str(), i))
        .collect();
    let opts = EncodeOptions::top_k(config.k);
    let mut ids = Vec::new();
    let mut rows = Vec::new();
    let mut targets: Vec<Vec<(u32, f32)>> = Vec::new();
    let mut used = Qrels::new();
    for j in qrels.iter() {
        let Some(&qi) = query_row.get(j.qid()) else {
            continue;
        };
        let rel: Vec<usize> = j
            .iter()
            .filter(|&(_, r)| r > 0)
            .filter_map(|(d, _)| doc_row.get(d).copied())
            .collect();
        if rel.is_empty() {
            continue;
        }
        let mut docs = Vec::with_capacity(rel.len() * dim);
        for &r in &rel {
            docs.extend_from_slice(&corpus.data()[r * dim..(r + 1) * dim]);
        }
        let mut mean: BTreeMap<u32, f32> = BTreeMap::new();
        for code in sae.encode(&docs, &opts)? {
            for (l, v) in code.iter() {
                *mean.entry(l).or_default() += v / rel.len() as f32;
            }
        }
        let mut top: Vec<(u32, f32)> = mean.into_iter().collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(config.latents);
        for (d, r) in j.iter() {
            used.insert(j.qid(), d, r);
        }
        ids.push(j.qid().to_owned());
        rows.extend_from_slice(&queries.data()[qi * dim..(qi + 1) * dim]);
        targets.push(top);
    }
    if ids.is_empty() {
        return Err(Error::Invalid(
            "no judged query has an embedding and a relevant document in the corpus".into(),
        ));
    }
    let codes = sae.encode(&rows, &opts)?;
    let mrr = |qrows: Vec<f32>| -> Result<f64> {
        let q = Embeddings::new(ids.clone(), dim, qrows)?;
        let hits = search(&q, corpus, &SearchOptions::top(10).metric(Metric::Dot))?;
        let mut run = Run::new("steer");
        for (qid, hits) in ids.iter().zip(&hits) {
            run.extend_query(qid, hits.iter().map(|(d, s)| (d.as_str(), f64::from(*s))))?;
        }
        let rr = reciprocal_rank_at(&used, &run, 10);
        Ok(rr.values().sum::<f64>() / rr.len().max(1) as f64)
    };
    let dense = mrr(rows.clone())?;
    let n = ids.len();
    let mut out = Vec::new();
    for &alpha in &config.strengths {
        let (mut dec, mut res, mut ctl) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let x = &rows[i * dim..(i + 1) * dim];
            let edits = |t: &[(u32, f32)]| -> Vec<Edit> {
                t.iter().map(|&(l, m)| Edit::add(l, alpha * m)).collect()
            };
            let own = edit_code(&codes[i], &edits(&targets[i]))?;
            let other = edit_code(&codes[i], &edits(&targets[(i + n / 2) % n]))?;
            dec.extend(decode_steered(sae, x, &codes[i], &own, false));
            res.extend(decode_steered(sae, x, &codes[i], &own, true));
            ctl.extend(decode_steered(sae, x, &codes[i], &other, true));
        }
        out.push(SteeringRow {
            strength: alpha,
            decoded: mrr(dec)?,
            residual: mrr(res)?,
            control: mrr(ctl)?,
        });
    }
    Ok(SteeringReport {
        config: config.clone(),
        queries: n,
        dense,
        rows: out,
    })
}

impl SteeringReport {
    /// The table as markdown.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "MRR@10 of dense retrieval with steered queries ({} queries; SAE top-{}; {} latents amplified per query; unsteered dense MRR@10 {:.4})\n\n",
            self.queries, self.config.k, self.config.latents, self.dense
        );
        s.push_str("| α | decoded dec(h+Δ) | residual x+dec(h+Δ)−dec(h) | control (other query's latents) |\n|---|---|---|---|\n");
        for r in &self.rows {
            s.push_str(&format!(
                "| {} | {:.4} | {:.4} | {:.4} |\n",
                r.strength, r.decoded, r.residual, r.control
            ));
        }
        s
    }

    /// Draws MRR@10 against α as a PNG (with the unsteered dense level).
    pub fn plot(&self, path: &Path) -> Result<()> {
        let xs: Vec<f64> = self.rows.iter().map(|r| f64::from(r.strength)).collect();
        let col = |f: fn(&SteeringRow) -> f64| self.rows.iter().map(f).collect::<Vec<f64>>();
        LineChart {
            title: "Steering: amplify the relevant documents' latents",
            x_label: "amplification α",
            y_label: "MRR@10",
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: vec![
                ("decoded".into(), xs.clone(), col(|r| r.decoded)),
                ("residual kept".into(), xs.clone(), col(|r| r.residual)),
                (
                    "control (other query)".into(),
                    xs.clone(),
                    col(|r| r.control),
                ),
                (
                    "dense, unsteered".into(),
                    xs.clone(),
                    vec![self.dense; xs.len()],
                ),
            ],
        }
        .save(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latent_terms_sae::{SaeConfig, SaeKind, SaeWeights};

    /// 2-d SAE with latents ±x, ±y (the sae crate's doc example).
    fn sae() -> SaeEncoder {
        let config = SaeConfig::new(SaeKind::TopK, 2, 4, 1).unwrap();
        SaeEncoder::new(SaeWeights {
            config,
            w_enc: vec![1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0, -1.0],
            b_enc: vec![0.0; 4],
            w_dec: vec![1.0, 0.0, -1.0, 0.0, 0.0, 1.0, 0.0, -1.0],
            b_dec: vec![0.0; 2],
        })
        .unwrap()
    }

    #[test]
    fn edits_parse_and_apply() {
        assert_eq!("3*2.5".parse::<Edit>().unwrap(), Edit::amplify(3, 2.5));
        assert_eq!("-7".parse::<Edit>().unwrap(), Edit::suppress(7));
        assert_eq!("2+0.5".parse::<Edit>().unwrap(), Edit::add(2, 0.5));
        assert_eq!("2=1".parse::<Edit>().unwrap().op, EditOp::Set(1.0));
        for bad in ["x*2", "3", "3*inf", "-q", ""] {
            assert!(bad.parse::<Edit>().is_err(), "{bad}");
        }
        let q = Query::new([(1, 0.5), (2, 1.0)]).unwrap();
        let e = edit_query(&q, &[Edit::suppress(2), Edit::amplify(1, 4.0)]).unwrap();
        assert_eq!(e.terms(), &[1]);
        assert_eq!(e.weights(), &[2.0]);
        assert!(
            edit_code(
                &SparseCode::default(),
                &[Edit::add(0, f32::MAX), Edit::amplify(0, 4.0)]
            )
            .is_err()
        );
    }

    #[test]
    fn steering_decodes_and_keeps_the_residual() {
        let sae = sae();
        let x = [0.9, 0.2];
        // Top-1 picks +x; the residual is (0, 0.2).
        let none = steer_embedding(&sae, &x, 1, &[], true).unwrap();
        assert_eq!(none, x.to_vec());
        let dec = steer_embedding(&sae, &x, 1, &[Edit::add(2, 1.0)], false).unwrap();
        assert_eq!(dec, vec![0.9, 1.0]);
        let res = steer_embedding(&sae, &x, 1, &[Edit::suppress(0)], true).unwrap();
        assert!((res[0]).abs() < 1e-6 && (res[1] - 0.2).abs() < 1e-6);
        assert!(steer_embedding(&sae, &[1.0], 1, &[], true).is_err());
    }

    #[test]
    fn amplifying_the_relevant_latent_finds_the_relevant_document() {
        let sae = sae();
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // The query points mostly at +x; its relevant document is +y.
        let corpus = Embeddings::new(ids(&["dx", "dy"]), 2, vec![1.0, 0.0, 0.0, 1.0]).unwrap();
        let queries = Embeddings::new(ids(&["q"]), 2, vec![0.8, 0.6]).unwrap();
        let qrels = Qrels::from_str("q 0 dy 1\n").unwrap();
        let config = SteeringConfig {
            k: 1,
            latents: 1,
            strengths: vec![0.0, 1.0],
        };
        let r = steering_experiment(&sae, &corpus, &queries, &qrels, &config).unwrap();
        assert_eq!(r.queries, 1);
        assert_eq!(r.dense, 0.5);
        assert_eq!(r.rows[0].residual, 0.5);
        assert_eq!(r.rows[1].residual, 1.0);
        assert_eq!(r.rows[1].decoded, 1.0);
        assert!(r.markdown().contains("| 1 | 1.0000 |"));
        let dir = tempfile::tempdir().unwrap();
        r.plot(&dir.path().join("s.png")).unwrap();
        let none = Qrels::from_str("zz 0 dy 1\n").unwrap();
        assert!(steering_experiment(&sae, &corpus, &queries, &none, &config).is_err());
    }
}
