//! Measure names in trec_eval's spelling and syntax.
//!
//! The per-query computation lives in the submodules: [`compute`] holds the
//! shared per-query data and the rank- and set-based measures, [`gain`] the
//! graded (nDCG-like) measures and [`interpolated`] the measures built on
//! interpolated precision.

mod compute;
mod gain;
mod interpolated;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use crate::error::{Error, Result};

pub(crate) use compute::{JudgedRanking, MIN_GEO_MEAN, NONPOOL, UNJUDGED, Workspace};

/// One evaluation measure, with its parameter where it has one.
///
/// Variants are declared in trec_eval's output order (`te_trec_measures[]`
/// in its `measures.c`), so sorting a list of measures reproduces the order
/// in which trec_eval prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Measure {
    /// Number of queries evaluated (aggregate only).
    NumQ,
    /// Number of documents retrieved (summed in the aggregate).
    NumRet,
    /// Number of relevant documents (summed in the aggregate).
    NumRel,
    /// Number of relevant documents retrieved (summed in the aggregate).
    NumRelRet,
    /// Mean average precision.
    Map,
    /// Average precision, aggregated with a geometric mean (aggregate only).
    ///
    /// The per-query value is the query's average precision; the aggregate
    /// is `exp(mean(ln(max(ap, 0.00001))))`, as in trec_eval.
    GmMap,
    /// Precision after R documents, R = number of relevant documents.
    Rprec,
    /// Binary preference: how often judged relevant documents are ranked
    /// above judged nonrelevant ones (Buckley & Voorhees, SIGIR 2004).
    Bpref,
    /// Reciprocal rank of the first relevant document (MRR@k with `-M k`).
    RecipRank,
    /// Interpolated precision at a recall level (printed `iprec_at_recall_0.10`).
    IprecAtRecall(Ratio),
    /// Precision at a cutoff.
    P(u32),
    /// The relevance of the first 10 retrieved documents as a string, e.g.
    /// `'0.20-00100'` (per query only; not a number). Its column in
    /// [`QueryEvaluation::values`](crate::QueryEvaluation::values) holds 0;
    /// the string is in [`QueryEvaluation::relstring`](crate::QueryEvaluation::relstring).
    Relstring,
    /// Recall at a cutoff.
    Recall(u32),
    /// Inferred average precision (Yilmaz & Aslam, CIKM 2006).
    InfAp,
    /// bpref, aggregated with a geometric mean (aggregate only).
    GmBpref,
    /// Precision at a multiple of R (printed `Rprec_mult_1.20`).
    RprecMult(Ratio),
    /// Set utility with trec_eval's default coefficients:
    /// relevant retrieved − nonrelevant retrieved.
    Utility,
    /// Interpolated precision averaged over the 11 recall levels 0.0, 0.1 … 1.0.
    ElevenPtAvg,
    /// Binary G: the mean over relevant documents of `1 / log2(2 + nonrelevant before it)`.
    BinG,
    /// Normalized gain G, gain = relevance level (trec_eval's experimental `G`).
    G,
    /// nDCG over the whole ranking, gain = relevance level.
    Ndcg,
    /// nDCG averaged over the relevant documents (trec_eval's experimental `ndcg_rel`).
    NdcgRel,
    /// nDCG averaged over the R levels of the ideal ranking (trec_eval's `Rndcg`).
    Rndcg,
    /// nDCG at a cutoff.
    NdcgCut(u32),
    /// Average precision at a cutoff.
    MapCut(u32),
    /// Precision at a cutoff relative to the best possible: relevant in the
    /// top k divided by `min(k, R)`.
    RelativeP(u32),
    /// 1 if a relevant document is in the top k, else 0.
    Success(u32),
    /// Relevant retrieved / retrieved.
    SetP,
    /// Relevant retrieved / min(retrieved, R).
    SetRelativeP,
    /// Relevant retrieved / R.
    SetRecall,
    /// Relevant retrieved² / (retrieved × R).
    SetMap,
    /// F1 of set precision and set recall (trec_eval's default beta of 1).
    SetF,
    /// Number of judged nonrelevant documents retrieved (summed in the aggregate).
    NumNonrelJudgedRet,
}

/// A measure parameter that is a real number rather than a rank: a recall
/// level of `iprec_at_recall` or a multiple of R of `Rprec_mult`.
///
/// Always finite. Compares by value (`-0.0` is stored as `0.0`), so it can
/// key a map, and prints as trec_eval names it: with two decimals (`0.10`).
#[derive(Debug, Clone, Copy)]
pub struct Ratio(f64);

impl Ratio {
    /// The ratio `value`, or `None` if it is not finite.
    pub fn new(value: f64) -> Option<Self> {
        // `+ 0.0` turns -0.0 into 0.0, so that equal values compare equal.
        value.is_finite().then_some(Ratio(value + 0.0))
    }

    /// `n / 100`, exactly the double that `0.nn` parses to.
    const fn hundredths(n: u32) -> Self {
        Ratio(n as f64 / 100.0)
    }

    /// The value.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for Ratio {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Ratio {}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ratio {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Hash for Ratio {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

impl fmt::Display for Ratio {
    /// trec_eval's `%3.2f`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:3.2}", self.0)
    }
}

const STANDARD_CUTOFFS: &[u32] = &[5, 10, 15, 20, 30, 100, 200, 500, 1000];
const SUCCESS_CUTOFFS: &[u32] = &[1, 5, 10];
/// The 11 standard recall levels 0.0, 0.1, …, 1.0.
pub(crate) const RECALL_LEVELS: &[Ratio] = &[
    Ratio::hundredths(0),
    Ratio::hundredths(10),
    Ratio::hundredths(20),
    Ratio::hundredths(30),
    Ratio::hundredths(40),
    Ratio::hundredths(50),
    Ratio::hundredths(60),
    Ratio::hundredths(70),
    Ratio::hundredths(80),
    Ratio::hundredths(90),
    Ratio::hundredths(100),
];
const R_MULTIPLES: &[Ratio] = &[
    Ratio::hundredths(20),
    Ratio::hundredths(40),
    Ratio::hundredths(60),
    Ratio::hundredths(80),
    Ratio::hundredths(100),
    Ratio::hundredths(120),
    Ratio::hundredths(140),
    Ratio::hundredths(160),
    Ratio::hundredths(180),
    Ratio::hundredths(200),
];

/// How a measure family takes parameters, with its defaults.
#[derive(Clone, Copy)]
enum Params {
    /// No parameters (or only trec_eval's defaults are supported).
    Fixed(Measure),
    /// Comma-separated positive integer cutoffs (`P.5,10`).
    Ranks(&'static [u32], fn(u32) -> Measure),
    /// Comma-separated real numbers (`iprec_at_recall.0.25,0.5`).
    Ratios(&'static [Ratio], fn(Ratio) -> Measure),
}

/// A measure name as trec_eval knows it (`P`, `ndcg_cut`, `bpref`) with its parameters.
#[derive(Clone, Copy)]
struct Family {
    name: &'static str,
    params: Params,
}

/// Every supported family, in trec_eval's order.
const FAMILIES: &[Family] = &[
    Family::single("num_q", Measure::NumQ),
    Family::single("num_ret", Measure::NumRet),
    Family::single("num_rel", Measure::NumRel),
    Family::single("num_rel_ret", Measure::NumRelRet),
    Family::single("map", Measure::Map),
    Family::single("gm_map", Measure::GmMap),
    Family::single("Rprec", Measure::Rprec),
    Family::single("bpref", Measure::Bpref),
    Family::single("recip_rank", Measure::RecipRank),
    Family::ratios("iprec_at_recall", RECALL_LEVELS, Measure::IprecAtRecall),
    Family::ranks("P", STANDARD_CUTOFFS, Measure::P),
    Family::single("relstring", Measure::Relstring),
    Family::ranks("recall", STANDARD_CUTOFFS, Measure::Recall),
    Family::single("infAP", Measure::InfAp),
    Family::single("gm_bpref", Measure::GmBpref),
    Family::ratios("Rprec_mult", R_MULTIPLES, Measure::RprecMult),
    Family::single("utility", Measure::Utility),
    Family::single("11pt_avg", Measure::ElevenPtAvg),
    Family::single("binG", Measure::BinG),
    Family::single("G", Measure::G),
    Family::single("ndcg", Measure::Ndcg),
    Family::single("ndcg_rel", Measure::NdcgRel),
    Family::single("Rndcg", Measure::Rndcg),
    Family::ranks("ndcg_cut", STANDARD_CUTOFFS, Measure::NdcgCut),
    Family::ranks("map_cut", STANDARD_CUTOFFS, Measure::MapCut),
    Family::ranks("relative_P", STANDARD_CUTOFFS, Measure::RelativeP),
    Family::ranks("success", SUCCESS_CUTOFFS, Measure::Success),
    Family::single("set_P", Measure::SetP),
    Family::single("set_relative_P", Measure::SetRelativeP),
    Family::single("set_recall", Measure::SetRecall),
    Family::single("set_map", Measure::SetMap),
    Family::single("set_F", Measure::SetF),
    Family::single("num_nonrel_judged_ret", Measure::NumNonrelJudgedRet),
];

/// Base names accepted by [`Measure::parse_list`], in trec_eval's order.
///
/// This is every measure of trec_eval 9.0.8 for the standard `qrels` and
/// `trec_results` formats except `runid`, which is a label rather than a
/// value (the CLI prints it).
pub const SUPPORTED: &[&str] = &[
    "num_q",
    "num_ret",
    "num_rel",
    "num_rel_ret",
    "map",
    "gm_map",
    "Rprec",
    "bpref",
    "recip_rank",
    "iprec_at_recall",
    "P",
    "relstring",
    "recall",
    "infAP",
    "gm_bpref",
    "Rprec_mult",
    "utility",
    "11pt_avg",
    "binG",
    "G",
    "ndcg",
    "ndcg_rel",
    "Rndcg",
    "ndcg_cut",
    "map_cut",
    "relative_P",
    "success",
    "set_P",
    "set_relative_P",
    "set_recall",
    "set_map",
    "set_F",
    "num_nonrel_judged_ret",
];

/// trec_eval's nicknames (`measures.c`), without `runid`.
const NICKNAMES: &[(&str, &[&str])] = &[
    (
        "official",
        &[
            "num_q",
            "num_ret",
            "num_rel",
            "num_rel_ret",
            "map",
            "gm_map",
            "Rprec",
            "bpref",
            "recip_rank",
            "iprec_at_recall",
            "P",
        ],
    ),
    (
        "set",
        &[
            "num_q",
            "num_ret",
            "num_rel",
            "num_rel_ret",
            "utility",
            "set_P",
            "set_recall",
            "set_relative_P",
            "set_map",
            "set_F",
        ],
    ),
    (
        "all_trec",
        &[
            "num_q",
            "num_ret",
            "num_rel",
            "num_rel_ret",
            "map",
            "gm_map",
            "Rprec",
            "bpref",
            "recip_rank",
            "iprec_at_recall",
            "P",
            "relstring",
            "recall",
            "infAP",
            "gm_bpref",
            "utility",
            "11pt_avg",
            "ndcg",
            "relative_P",
            "Rprec_mult",
            "success",
            "map_cut",
            "ndcg_cut",
            "ndcg_rel",
            "Rndcg",
            "binG",
            "G",
            "set_P",
            "set_recall",
            "set_relative_P",
            "set_map",
            "set_F",
            "num_nonrel_judged_ret",
        ],
    ),
];

impl Family {
    const fn single(name: &'static str, measure: Measure) -> Self {
        Family {
            name,
            params: Params::Fixed(measure),
        }
    }

    const fn ranks(name: &'static str, defaults: &'static [u32], make: fn(u32) -> Measure) -> Self {
        Family {
            name,
            params: Params::Ranks(defaults, make),
        }
    }

    const fn ratios(
        name: &'static str,
        defaults: &'static [Ratio],
        make: fn(Ratio) -> Measure,
    ) -> Self {
        Family {
            name,
            params: Params::Ratios(defaults, make),
        }
    }

    fn named(name: &str) -> Result<Self> {
        FAMILIES
            .iter()
            .find(|f| f.name == name)
            .copied()
            .ok_or_else(|| Error::UnknownMeasure {
                name: name.to_owned(),
                supported: format!(
                    "{}, and the nicknames {}",
                    SUPPORTED.join(", "),
                    NICKNAMES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    /// The measures of this family, with `params` (the text after the dot) or the defaults.
    fn expand(self, params: Option<&str>) -> Result<Vec<Measure>> {
        let invalid = |params: &str, expected| Error::InvalidMeasureParams {
            measure: self.name.to_owned(),
            params: params.to_owned(),
            expected,
        };
        match (self.params, params) {
            (Params::Fixed(m), None) => Ok(vec![m]),
            (Params::Fixed(_), Some(p)) => Err(invalid(
                p,
                "no parameters: only trec_eval's default parameters are supported for this measure",
            )),
            (Params::Ranks(defaults, make), None) => {
                Ok(defaults.iter().copied().map(make).collect())
            }
            (Params::Ranks(_, make), Some(p)) => {
                let expected = "comma-separated positive integer cutoffs such as 5,10";
                let mut cutoffs = p
                    .split(',')
                    .map(|c| {
                        c.trim()
                            .parse::<u32>()
                            .ok()
                            .filter(|&c| c > 0)
                            .ok_or_else(|| invalid(p, expected))
                    })
                    .collect::<Result<Vec<u32>>>()?;
                // trec_eval sorts cutoffs and prints them in increasing order.
                cutoffs.sort_unstable();
                cutoffs.dedup();
                Ok(cutoffs.into_iter().map(make).collect())
            }
            (Params::Ratios(defaults, make), None) => {
                Ok(defaults.iter().copied().map(make).collect())
            }
            (Params::Ratios(_, make), Some(p)) => {
                let expected = "comma-separated finite numbers such as 0.2,1.0";
                let mut ratios = p
                    .split(',')
                    .map(|c| {
                        c.trim()
                            .parse::<f64>()
                            .ok()
                            .and_then(Ratio::new)
                            .ok_or_else(|| invalid(p, expected))
                    })
                    .collect::<Result<Vec<Ratio>>>()?;
                ratios.sort_unstable();
                ratios.dedup();
                Ok(ratios.into_iter().map(make).collect())
            }
        }
    }
}

fn nickname(name: &str) -> Option<&'static [&'static str]> {
    NICKNAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, list)| *list)
}

/// Splits `-m` text at the first dot, as trec_eval does: `Rprec_mult.0.2,1.0`
/// is the measure `Rprec_mult` with parameters `0.2,1.0`.
fn split_spec(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once('.') {
        Some((base, params)) => (base, Some(params)),
        None => (spec, None),
    }
}

fn nickname_params_error(name: &str, params: &str) -> Error {
    Error::InvalidMeasureParams {
        measure: name.to_owned(),
        params: params.to_owned(),
        expected: "no parameters after a nickname",
    }
}

/// Records that `family` was asked for, keeping the first parameters given.
fn request<'a>(
    requested: &mut Vec<(Family, Option<&'a str>)>,
    family: Family,
    params: Option<&'a str>,
) -> Result<()> {
    // Parameters that lose to earlier ones are still checked, so that a typo
    // is reported rather than silently ignored.
    family.expand(params)?;
    match requested.iter_mut().find(|(f, _)| f.name == family.name) {
        Some((_, first)) => {
            if first.is_none() {
                *first = params;
            }
        }
        None => requested.push((family, params)),
    }
    Ok(())
}

impl Measure {
    /// Parses one `-m` argument in trec_eval's syntax: a base name, optional
    /// parameters after a dot (`P.5,10`, `iprec_at_recall.0.25,0.5`), or a
    /// nickname (`all_trec`, `official`, `set`). Returns the measures it
    /// stands for, in trec_eval's order.
    ///
    /// Cutoff lists are supported for every measure that has them (`P`,
    /// `recall`, `ndcg_cut`, `map_cut`, `relative_P`, `success`,
    /// `iprec_at_recall`, `Rprec_mult`). The other parameterized measures of
    /// trec_eval (`relstring`, `utility`, `11pt_avg`, `set_F` and the gain
    /// pairs of `ndcg`, `ndcg_rel`, `Rndcg` and `G`) are computed with their
    /// default parameters only; giving them parameters is an
    /// [`Error::InvalidMeasureParams`].
    ///
    /// ```
    /// use latent_terms_eval::Measure;
    /// let ms = Measure::parse("P.5,10")?;
    /// assert_eq!(ms, [Measure::P(5), Measure::P(10)]);
    /// assert_eq!(ms[0].to_string(), "P_5");
    /// let levels = Measure::parse("iprec_at_recall")?;
    /// assert_eq!(levels.len(), 11);
    /// assert_eq!(levels[1].to_string(), "iprec_at_recall_0.10");
    /// # Ok::<(), latent_terms_eval::Error>(())
    /// ```
    pub fn parse(spec: &str) -> Result<Vec<Measure>> {
        let (base, params) = split_spec(spec);
        if let Some(names) = nickname(base) {
            if let Some(p) = params {
                return Err(nickname_params_error(base, p));
            }
            let mut all = Vec::new();
            for name in names {
                all.extend(Family::named(name)?.expand(None)?);
            }
            return Ok(all);
        }
        Family::named(base)?.expand(params)
    }

    /// Parses several `-m` arguments into trec_eval's output order.
    ///
    /// As in trec_eval, a measure's parameters come from the first argument
    /// that gives it parameters, wherever it is: `-m P.5 -m P.10` gives only
    /// `P_5`, and `-m all_trec -m P.5` gives `P_5` and no other P cutoff.
    /// A measure named only without parameters gets the default ones.
    pub fn parse_list<S: AsRef<str>>(specs: &[S]) -> Result<Vec<Measure>> {
        // Each family requested, with the first parameters given for it.
        let mut requested: Vec<(Family, Option<&str>)> = Vec::new();
        for spec in specs {
            let (base, params) = split_spec(spec.as_ref());
            if let Some(names) = nickname(base) {
                if let Some(p) = params {
                    return Err(nickname_params_error(base, p));
                }
                for name in names {
                    request(&mut requested, Family::named(name)?, None)?;
                }
            } else {
                request(&mut requested, Family::named(base)?, params)?;
            }
        }
        let mut all = Vec::new();
        for (family, params) in requested {
            all.extend(family.expand(params)?);
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// The measure's base name, shared by all its cutoffs (`P` for `P_5`).
    pub fn base_name(self) -> &'static str {
        match self {
            Measure::NumQ => "num_q",
            Measure::NumRet => "num_ret",
            Measure::NumRel => "num_rel",
            Measure::NumRelRet => "num_rel_ret",
            Measure::Map => "map",
            Measure::GmMap => "gm_map",
            Measure::Rprec => "Rprec",
            Measure::Bpref => "bpref",
            Measure::RecipRank => "recip_rank",
            Measure::IprecAtRecall(_) => "iprec_at_recall",
            Measure::P(_) => "P",
            Measure::Relstring => "relstring",
            Measure::Recall(_) => "recall",
            Measure::InfAp => "infAP",
            Measure::GmBpref => "gm_bpref",
            Measure::RprecMult(_) => "Rprec_mult",
            Measure::Utility => "utility",
            Measure::ElevenPtAvg => "11pt_avg",
            Measure::BinG => "binG",
            Measure::G => "G",
            Measure::Ndcg => "ndcg",
            Measure::NdcgRel => "ndcg_rel",
            Measure::Rndcg => "Rndcg",
            Measure::NdcgCut(_) => "ndcg_cut",
            Measure::MapCut(_) => "map_cut",
            Measure::RelativeP(_) => "relative_P",
            Measure::Success(_) => "success",
            Measure::SetP => "set_P",
            Measure::SetRelativeP => "set_relative_P",
            Measure::SetRecall => "set_recall",
            Measure::SetMap => "set_map",
            Measure::SetF => "set_F",
            Measure::NumNonrelJudgedRet => "num_nonrel_judged_ret",
        }
    }

    /// True for the counting measures that trec_eval prints as integers and
    /// sums (rather than averages) over queries.
    pub fn is_count(self) -> bool {
        matches!(
            self,
            Measure::NumQ
                | Measure::NumRet
                | Measure::NumRel
                | Measure::NumRelRet
                | Measure::NumNonrelJudgedRet
        )
    }

    /// True for the measures trec_eval prints only on the `all` lines:
    /// `num_q`, `gm_map` and `gm_bpref`.
    pub fn is_summary_only(self) -> bool {
        matches!(self, Measure::NumQ | Measure::GmMap | Measure::GmBpref)
    }

    /// True for the measures aggregated with trec_eval's geometric mean
    /// (`gm_map`, `gm_bpref`): `exp(mean(ln(max(x, 0.00001))))`.
    pub fn is_geometric_mean(self) -> bool {
        matches!(self, Measure::GmMap | Measure::GmBpref)
    }

    /// True for the measures whose per-query values rely on the running
    /// sums that [`Workspace`] precomputes.
    pub(crate) fn uses_prefix_sums(self) -> bool {
        matches!(
            self,
            Measure::Map
                | Measure::GmMap
                | Measure::Rprec
                | Measure::P(_)
                | Measure::Recall(_)
                | Measure::MapCut(_)
                | Measure::RelativeP(_)
                | Measure::Success(_)
        )
    }
}

impl fmt::Display for Measure {
    /// The name trec_eval prints, e.g. `ndcg_cut_10`, `P_5`, `recip_rank`,
    /// `iprec_at_recall_0.10`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = self.base_name();
        match self {
            Measure::P(k)
            | Measure::Recall(k)
            | Measure::NdcgCut(k)
            | Measure::MapCut(k)
            | Measure::RelativeP(k)
            | Measure::Success(k) => write!(f, "{base}_{k}"),
            Measure::IprecAtRecall(r) | Measure::RprecMult(r) => write!(f, "{base}_{r}"),
            _ => f.write_str(base),
        }
    }
}
