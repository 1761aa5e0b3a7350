//! Parsing, names, and values computed by hand.

use super::*;

#[test]
fn parses_trec_eval_syntax() {
    assert_eq!(
        Measure::parse_list(&["recall.100,10", "P.5", "map", "ndcg_cut.10"]).unwrap(),
        [
            Measure::Map,
            Measure::P(5),
            Measure::Recall(10),
            Measure::Recall(100),
            Measure::NdcgCut(10)
        ]
    );
    assert_eq!(Measure::parse("P").unwrap().len(), 9);
    assert_eq!(Measure::parse("success").unwrap().len(), 3);
    assert_eq!(Measure::parse("relative_P").unwrap().len(), 9);
    assert_eq!(Measure::parse("bpref").unwrap(), [Measure::Bpref]);
    for bad in [
        "P.x",
        "P.0",
        "P.",
        "map.5",
        "bpref.3",
        "set_F.0.5",
        "ndcg.1=3",
    ] {
        assert!(
            matches!(Measure::parse(bad), Err(Error::InvalidMeasureParams { .. })),
            "{bad}"
        );
    }
    for bad in [
        "iprec_at_recall.x",
        "iprec_at_recall.nan",
        "Rprec_mult.0.5,inf",
        "all_trec.5",
    ] {
        assert!(
            matches!(Measure::parse(bad), Err(Error::InvalidMeasureParams { .. })),
            "{bad}"
        );
    }
    assert!(matches!(
        Measure::parse("runid"),
        Err(Error::UnknownMeasure { .. })
    ));
}

#[test]
fn first_parameters_win_as_in_trec_eval() {
    // trec_eval takes a measure's parameters from the first -m that gives
    // some, wherever it is; a bare name alone means the defaults.
    assert_eq!(
        Measure::parse_list(&["P.5", "P.10"]).unwrap(),
        [Measure::P(5)]
    );
    assert_eq!(
        Measure::parse_list(&["P", "P.10"]).unwrap(),
        [Measure::P(10)]
    );
    let with_all = Measure::parse_list(&["all_trec", "P.5"]).unwrap();
    let ps: Vec<_> = with_all.iter().filter(|m| m.base_name() == "P").collect();
    assert_eq!(ps, [&Measure::P(5)]);
    // Losing parameters are still checked.
    assert!(Measure::parse_list(&["P.5", "P.x"]).is_err());
}

#[test]
fn float_cutoffs_are_sorted_and_named_like_trec_eval() {
    let ms = Measure::parse("Rprec_mult.1.5,0.2,.25").unwrap();
    let names: Vec<String> = ms.iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        ["Rprec_mult_0.20", "Rprec_mult_0.25", "Rprec_mult_1.50"]
    );
    let levels = Measure::parse("iprec_at_recall").unwrap();
    let names: Vec<String> = levels.iter().map(ToString::to_string).collect();
    assert_eq!(names[0], "iprec_at_recall_0.00");
    assert_eq!(names[10], "iprec_at_recall_1.00");
    // The default 0.1 is the same double as a typed "0.1".
    assert_eq!(Measure::parse("iprec_at_recall.0.1").unwrap(), [levels[1]]);
    assert_eq!(Ratio::new(-0.0), Ratio::new(0.0));
    assert_eq!(Ratio::new(f64::NAN), None);
}

#[test]
fn nicknames_expand_to_trec_eval_lists() {
    let all = Measure::parse_list(&["all_trec"]).unwrap();
    let families: Vec<&str> = all
        .iter()
        .map(|m| m.base_name())
        .fold(Vec::new(), |mut v, n| {
            if v.last() != Some(&n) {
                v.push(n);
            }
            v
        });
    // Every measure, in trec_eval's print order.
    assert_eq!(families, SUPPORTED);
    assert_eq!(
        all.len(),
        4 + 2 + 3 + 11 + 9 + 1 + 9 + 2 + 10 + 2 + 5 + 9 * 3 + 3 + 6
    );
    assert_eq!(all[0], Measure::NumQ);
    let official = Measure::parse_list(&["official"]).unwrap();
    assert_eq!(official.len(), 4 + 5 + 11 + 9);
    assert!(official.contains(&Measure::GmMap) && official.contains(&Measure::Bpref));
    let set = Measure::parse_list(&["set"]).unwrap();
    assert_eq!(
        set,
        [
            Measure::NumQ,
            Measure::NumRet,
            Measure::NumRel,
            Measure::NumRelRet,
            Measure::Utility,
            Measure::SetP,
            Measure::SetRelativeP,
            Measure::SetRecall,
            Measure::SetMap,
            Measure::SetF
        ]
    );
}

#[test]
fn families_match_supported_names() {
    let names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
    assert_eq!(names, SUPPORTED);
    for family in FAMILIES {
        for m in family.expand(None).unwrap() {
            assert_eq!(m.base_name(), family.name);
        }
    }
}

#[test]
fn prints_trec_eval_names() {
    let names: Vec<String> = Measure::parse_list(&["all_trec"])
        .unwrap()
        .iter()
        .map(|m| m.to_string())
        .collect();
    for name in [
        "ndcg_cut_10",
        "success_1",
        "relative_P_5",
        "iprec_at_recall_0.10",
        "Rprec_mult_2.00",
        "11pt_avg",
        "infAP",
        "num_nonrel_judged_ret",
    ] {
        assert!(names.contains(&name.to_owned()), "{name}");
    }
}

/// The example ranking of the value tests, at relevance level 1:
///
/// | rank | 1 | 2 | 3 | 4 | 5 | 6 | 7 |
/// |---|---|---|---|---|---|---|---|
/// | judgment | 1 | not judged | 0 | 2 | judged -1 | 0 | 1 |
///
/// Also judged but not retrieved: one document at 1 and one at 0. So R = 4
/// (levels 2, 1, 1, 1), 3 judged nonrelevant, 3 relevant retrieved.
const RANKED: [i64; 7] = [1, NONPOOL, 0, 2, UNJUDGED, 0, 1];
const JUDGED_DESC: [i64; 7] = [2, 1, 1, 1, 0, 0, 0];

fn values(ranked: &[i64], judged_desc: &[i64], level: i64, measures: &[Measure]) -> Vec<f64> {
    let ranking = JudgedRanking {
        ranked,
        judged_levels_desc: judged_desc,
        relevance_level: level,
    };
    let mut out = vec![f64::NAN; measures.len()];
    ranking.compute(measures, &mut out, &mut Workspace::default());
    out
}

fn value(measure: Measure) -> f64 {
    values(&RANKED, &JUDGED_DESC, 1, &[measure])[0]
}

fn assert_close(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-12, "got {got}, want {want}");
}

#[test]
fn bpref_by_hand() {
    // Relevant at ranks 1, 4, 7 with 0, 1 and 2 judged nonrelevant above;
    // min(R, #nonrelevant) = 3: (1 + (1 - 1/3) + (1 - 2/3)) / R.
    assert_close(value(Measure::Bpref), 2.0 / 4.0);
    assert_close(value(Measure::GmBpref), 2.0 / 4.0);
    // Unjudged and unpooled documents change nothing.
    assert_close(
        values(&[1, 0, 2, 0, 1], &JUDGED_DESC, 1, &[Measure::Bpref])[0],
        2.0 / 4.0,
    );
    // At level 2 only rank 4 is relevant (R = 1), below 2 nonrelevant
    // (judged 1 and 0): 1 - min(2, 1) / min(6, 1) = 0.
    assert_close(values(&RANKED, &JUDGED_DESC, 2, &[Measure::Bpref])[0], 0.0);
}

#[test]
fn iprec_at_recall_by_hand() {
    let levels = Measure::parse("iprec_at_recall").unwrap();
    let got = values(&RANKED, &JUDGED_DESC, 1, &levels);
    // Precision 1 at rank 1, 2/4 at rank 4, 3/7 at rank 7. Level x needs
    // floor(4x + 0.9) relevant documents: 0,1,1,2,2,2,3,3,4,4,4; 4 is never
    // reached. Interpolation takes the best precision at or below that rank.
    let want = [
        1.0,
        1.0,
        1.0,
        0.5,
        0.5,
        0.5,
        3.0 / 7.0,
        3.0 / 7.0,
        0.0,
        0.0,
        0.0,
    ];
    for (g, w) in got.iter().zip(want) {
        assert_close(*g, w);
    }
    assert_close(
        value(Measure::ElevenPtAvg),
        want.iter().rev().sum::<f64>() / 11.0,
    );
    // A single level computes the same as the whole family.
    assert_close(value(levels[6]), 3.0 / 7.0);
    // Nothing retrieved: 0/0, as in trec_eval.
    assert!(values(&[], &JUDGED_DESC, 1, &levels)[0].is_nan());
}

#[test]
fn set_measures_by_hand() {
    // 7 retrieved, R = 4, 3 relevant retrieved.
    let (p, r) = (3.0 / 7.0, 3.0 / 4.0);
    assert_close(value(Measure::SetF), 2.0 * p * r / (p + r));
    assert_close(value(Measure::SetF), 6.0 / 11.0);
    assert_close(value(Measure::SetP), p);
    assert_close(value(Measure::SetRecall), r);
    assert_close(value(Measure::SetRelativeP), 3.0 / 4.0);
    assert_close(value(Measure::SetMap), 9.0 / 28.0);
    assert_eq!(value(Measure::Utility), 3.0 - 4.0);
    assert_eq!(value(Measure::NumNonrelJudgedRet), 2.0);
    // No relevant document retrieved: F is 0, not NaN.
    assert_eq!(
        values(&[0, NONPOOL], &JUDGED_DESC, 1, &[Measure::SetF])[0],
        0.0
    );
}

#[test]
fn other_measures_by_hand() {
    assert_close(value(Measure::Map), (1.0 + 2.0 / 4.0 + 3.0 / 7.0) / 4.0);
    assert_close(value(Measure::GmMap), value(Measure::Map));
    assert_close(value(Measure::Rprec), 2.0 / 4.0);
    assert_close(value(Measure::P(2)), 0.5);
    assert_close(value(Measure::RelativeP(5)), 2.0 / 4.0);
    assert_close(value(Measure::RelativeP(1)), 1.0);
    // infAP: 1 at rank 1; at rank 4, 1/4 + 3/4 * 2/3 * (1+e)/(2+2e) = 1/2;
    // at rank 7, 1/7 + 6/7 * 5/6 * (2+e)/(4+2e) = 1/2.
    assert_close(value(Measure::InfAp), 2.0 / 4.0);
    // binG: 1/log2(2 + nonrelevant above): 0, 2 and 4 nonrelevant above.
    assert_close(
        value(Measure::BinG),
        (1.0 + 1.0 / 4f64.log2() + 1.0 / 6f64.log2()) / 4.0,
    );
    // Rprec_mult: multiples of R = 4 at ranks floor(4m + 0.9).
    let multiples = Measure::parse("Rprec_mult.0.2,0.5,1,1.5,2").unwrap();
    let got = values(&RANKED, &JUDGED_DESC, 1, &multiples);
    // Ranks 1, 2, 4, 6 and 8 (> 7 retrieved, so 3 relevant / 8).
    let want = [1.0, 0.5, 0.5, 2.0 / 6.0, 3.0 / 8.0];
    for (g, w) in got.iter().zip(want) {
        assert_close(*g, w);
    }
    // G: costs 2,1,1,1,1,1,1 (ideal gain, at least 1), gains 1,0,0,2,0,0,1.
    let g = 1.0 / 3f64.log2() + 2.0 / 4f64.log2() + 1.0 / 6f64.log2();
    assert_close(value(Measure::G), g / 5.0);
    let ranking = JudgedRanking {
        ranked: &RANKED,
        judged_levels_desc: &JUDGED_DESC,
        relevance_level: 1,
    };
    assert_eq!(ranking.relstring(), "1-02.01");
    assert_eq!(
        JudgedRanking {
            ranked: &[12, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8],
            judged_levels_desc: &[],
            relevance_level: 1
        }
        .relstring(),
        ">901234567"
    );
}

#[test]
fn ndcg_by_hand() {
    // Relevant at ranks 1 and 3 of 4; 3 relevant in total.
    let ranked = [1, NONPOOL, 2, 0];
    let judged = [2, 1, 1, 0];
    let get = |level, m| values(&ranked, &judged, level, &[m])[0];
    assert_close(get(1, Measure::Map), (1.0 + 2.0 / 3.0) / 3.0);
    assert_eq!(get(1, Measure::P(2)), 0.5);
    assert_eq!(get(1, Measure::RecipRank), 1.0);
    assert_eq!(get(2, Measure::RecipRank), 1.0 / 3.0);
    assert_eq!(get(1, Measure::Rprec), 2.0 / 3.0);
    assert_eq!(get(1, Measure::Recall(1000)), 2.0 / 3.0);
    let dcg = 1.0 + 2.0 / 4f64.log2();
    let idcg = 2.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
    assert_close(get(1, Measure::Ndcg), dcg / idcg);
    assert_close(get(1, Measure::NdcgCut(1)), 1.0 / 2.0);
    assert_eq!(values(&[], &judged, 1, &[Measure::Map])[0], 0.0);
    assert_eq!(values(&ranked, &[0, 0], 1, &[Measure::Ndcg])[0], 0.0);
    // A value of 0 is +0.0, which prints as 0.0000 (not -0.0000).
    assert!(values(&[0], &judged, 1, &[Measure::Ndcg])[0].is_sign_positive());
}
