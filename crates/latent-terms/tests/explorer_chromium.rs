//! The latent explorer rendered in a real browser: Debian's headless `chromium` loads the
//! generated site from disk; the test checks the rendered DOM (a card's documents, an
//! explanation's contributions, the inline script's output) and saves a screenshot.
//!
//! Skips with a message where `/usr/bin/chromium` is missing (`scripts/setup-chromium`
//! installs it; `.ci/run` calls that). Set `EXPLORER_SCREENSHOT_DIR` to keep the
//! screenshots.

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use latent_terms::interpret::cards::{CardOptions, attach_titles, cards};
use latent_terms::interpret::describe::{Descriptions, KeywordDescriber, LatentDescriber};
use latent_terms::interpret::explain::explain_match;
use latent_terms::interpret::explorer::{
    QueryView, ResultView, Site, latent_page, query_page, write_site,
};
use latent_terms::pipeline::LatentIndex;
use latent_terms::sae::SparseCode;
use latent_terms::sparse_index::{DotProduct, Query};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs chromium headless with `args` then the page URL; stdout goes to `stdout`.
fn chromium(profile: &Path, args: &[String], url: &str, stdout: &Path) {
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(File::create(stdout).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited with {status}");
            return;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn dump_dom(dir: &Path, page: &Path, name: &str) -> String {
    let out = dir.join(format!("{name}.dom.html"));
    let profile = dir.join(format!("profile-{name}"));
    chromium(&profile, &["--dump-dom".into()], &url(page), &out);
    std::fs::read_to_string(out).unwrap()
}

fn url(page: &Path) -> String {
    format!("file://{}", page.canonicalize().unwrap().display())
}

/// A tiny collection: three documents, one query, three latents.
fn build_site(out: &Path) {
    let ids: Vec<String> = ["d-otter", "d-river", "d-tapir"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let codes = [
        SparseCode::from_pairs(&[(1, 0.75), (2, 0.25)]),
        SparseCode::from_pairs(&[(1, 0.5), (3, 0.9)]),
        SparseCode::from_pairs(&[(3, 0.6)]),
    ];
    let index = LatentIndex::build(&ids, &codes, None).unwrap();
    let texts = [
        (
            "d-otter",
            "Otters",
            "Sea otters float on kelp and eat urchins",
        ),
        (
            "d-river",
            "River otters",
            "River otters swim in cold rivers",
        ),
        (
            "d-tapir",
            "Tapirs",
            "Tapirs browse leaves in the rainforest",
        ),
    ];
    let describer = KeywordDescriber::new(
        texts
            .iter()
            .map(|(i, t, b)| (i.to_string(), format!("{t} {b}"))),
    );
    let mut card_list = cards(index.index(), &CardOptions::default()).unwrap();
    describer.describe_all(&mut card_list).unwrap();
    let titles = texts
        .iter()
        .map(|(i, t, _)| (i.to_string(), t.to_string()))
        .collect();
    attach_titles(&mut card_list, &titles);
    let descriptions = Descriptions::from_cards(&card_list);
    let q = Query::new([(1, 1.0), (2, 1.0)]).unwrap();
    let mut results = Vec::new();
    for (i, (doc, _)) in index
        .search(&q, &DotProduct, 10)
        .unwrap()
        .iter()
        .enumerate()
    {
        let explanation = explain_match(
            index.index(),
            "q<1>",
            &q,
            &DotProduct,
            "dot",
            doc,
            Some(&descriptions),
        )
        .unwrap();
        results.push(ResultView {
            rank: i + 1,
            title: titles.get(doc).cloned().unwrap_or_default(),
            relevant: doc == "d-otter",
            explanation,
        });
    }
    let queries = vec![QueryView {
        id: "q<1>".into(),
        text: "do otters & tapirs <swim>?".into(),
        latents: vec![(1, 1.0), (2, 1.0)],
        results,
    }];
    let site = Site {
        title: "explorer test".into(),
        facts: vec![("documents".into(), "3".into())],
        cards: &card_list,
        zipf_png: None,
        queries: &queries,
    };
    assert_eq!(write_site(&site, out).unwrap(), 2 + card_list.len() + 1);
}

#[test]
fn explorer_renders_in_headless_chromium() {
    if !Path::new(CHROMIUM).exists() {
        latent_terms_io::missing_asset(&format!(
            "SKIPPED explorer_renders_in_headless_chromium: {CHROMIUM} is not installed (run scripts/setup-chromium)"
        ));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    build_site(&site);

    // The card of latent 1: its two documents, highest activation first.
    let card = dump_dom(tmp.path(), &site.join(latent_page(1)), "card");
    assert!(
        card.contains("data-rendered=\"yes\""),
        "the inline script did not run"
    );
    let otter = card
        .find("<td class=\"doc-id\">d-otter</td>")
        .expect("d-otter on the card");
    let river = card
        .find("<td class=\"doc-id\">d-river</td>")
        .expect("d-river on the card");
    assert!(otter < river, "documents are ranked by activation");
    assert!(card.contains("<td class=\"n activation\">0.7500</td>"));
    assert!(card.contains("<td id=\"df\">2</td>"));

    // The query page: d-otter's score 1.0 = 0.75 (latent 1) + 0.25 (latent 2); the script
    // turns each contribution into a share of the score.
    let query = dump_dom(tmp.path(), &site.join(query_page("q<1>")), "query");
    assert!(query.contains("data-rendered=\"yes\""));
    assert!(
        query.contains("do otters &amp; tapirs &lt;swim&gt;?"),
        "text is escaped"
    );
    assert!(query.contains("<td class=\"n contribution\">0.7500</td>"));
    assert!(query.contains("<td class=\"n contribution\">0.2500</td>"));
    assert!(
        query.contains("<span class=\"pct\">75.0%</span>"),
        "script output missing"
    );
    assert!(query.contains("<span class=\"pct\">25.0%</span>"));
    assert!(
        query.contains("width: 75%") || query.contains("width: 75.0%"),
        "contribution bar not drawn"
    );
    assert!(query.contains("<td class=\"n total\">1.0000</td>"));
    assert!(query.contains("rendered 3 contributions"));

    // The front page lists latents by document frequency.
    let index = dump_dom(tmp.path(), &site.join("index.html"), "index");
    let first = index.find("href=\"latent/1.html\"").unwrap();
    let last = index.find("href=\"latent/2.html\"").unwrap();
    assert!(first < last);

    let shots: PathBuf = std::env::var_os("EXPLORER_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("explorer-test-query.png");
    chromium(
        &tmp.path().join("profile-shot"),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,900".into(),
        ],
        &url(&site.join(query_page("q<1>"))),
        &tmp.path().join("shot.out"),
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(png.len() > 5_000, "screenshot is suspiciously small");
}
