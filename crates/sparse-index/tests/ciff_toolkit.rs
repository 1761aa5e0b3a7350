//! CIFF against an independent implementation: ciff-toolkit 0.2.2 (Python, Google
//! protobuf over the official schema), installed by `scripts/setup-assets --lucene`.
//!
//! * ciff-toolkit reads our export and sees exactly our postings, doc records and header;
//! * ciff-toolkit's `ciff_merge` (its own writer) merges two of our exports, and our import
//!   of the merged file has exactly the postings of the index built from all documents.
//!
//! Skips with a message when the venv is absent.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use latent_terms_sparse_index::export::{TermNames, import_ciff, write_ciff};
use latent_terms_sparse_index::{
    Analyzer, DotProduct, Index, IndexBuilder, IndexConfig, SparseVector, Vocabulary,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn venv_bin(name: &str) -> PathBuf {
    root().join("assets/lucene/ciff-venv/bin").join(name)
}

/// Deterministic pseudo-text: words from a small Zipf-ish vocabulary, with accents and CJK.
fn text(i: usize) -> String {
    const WORDS: [&str; 12] = [
        "latent",
        "terms",
        "café",
        "naïve",
        "retrieval",
        "日本",
        "sparse",
        "lucene",
        "engine",
        "ciff",
        "zipf",
        "posting",
    ];
    let mut s = String::new();
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for _ in 0..(3 + i % 9) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Squaring a uniform index skews the picks towards the first words.
        let u = (x % 1000) as f64 / 1000.0;
        s.push_str(WORDS[((u * u) * WORDS.len() as f64) as usize]);
        s.push(' ');
    }
    s
}

fn lexical(ids: impl Iterator<Item = usize>) -> Index {
    let analyzer = Analyzer::english();
    let mut vocab = Vocabulary::new();
    let mut b = IndexBuilder::new(IndexConfig::lexical()).expect("config");
    for i in ids {
        let v = vocab.add_document(&analyzer, &text(i)).expect("fits");
        b.add(format!("d{i:04}"), &v).expect("added");
    }
    let mut index = b.build().expect("built");
    index.set_vocabulary(vocab).expect("covers");
    index
}

/// Every live posting by (term name, external id) → weight.
fn postings_by_name(index: &Index) -> BTreeMap<(String, String), f32> {
    let names = TermNames::for_index(index);
    let mut out = BTreeMap::new();
    for term in index.term_ids() {
        for (doc, w) in index.postings(term).expect("postings") {
            let id = index.external_id(doc).expect("id").to_owned();
            out.insert((names.name(term).expect("named").into_owned(), id), w);
        }
    }
    out
}

/// The dump `scripts/ciff-toolkit-dump.py` must print for an export of `index`, computed
/// from the index directly (not from our CIFF writer).
fn expected_dump(index: &Index) -> String {
    let names = TermNames::for_index(index);
    let live: Vec<u32> = (0..index.max_doc())
        .filter(|&d| !index.is_deleted(d))
        .collect();
    let dense: BTreeMap<u32, usize> = live.iter().enumerate().map(|(i, &d)| (d, i)).collect();
    let mut lengths = vec![0u64; live.len()];
    let mut lists: BTreeMap<String, Vec<(usize, u64)>> = BTreeMap::new();
    for term in index.term_ids() {
        let postings = index.postings(term).expect("postings");
        if postings.is_empty() {
            continue;
        }
        let name = names.name(term).expect("named").into_owned();
        let list = lists.entry(name).or_default();
        for (doc, w) in postings {
            let d = dense[&doc];
            list.push((d, w as u64));
            lengths[d] += w as u64;
        }
    }
    let mut out = String::new();
    let total: u64 = lengths.iter().sum();
    writeln!(out, "header 1 {} {} {total}", lists.len(), live.len()).expect("string");
    for (term, list) in &lists {
        let cf: u64 = list.iter().map(|p| p.1).sum();
        let postings: Vec<String> = list.iter().map(|(d, tf)| format!("{d}:{tf}")).collect();
        writeln!(
            out,
            "term {term} {} {cf} {}",
            list.len(),
            postings.join(" ")
        )
        .expect("string");
    }
    for (i, &d) in live.iter().enumerate() {
        let id = index.external_id(d).expect("id");
        writeln!(out, "doc {i} {id} {}", lengths[i]).expect("string");
    }
    out
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("process starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn ciff_toolkit_reads_our_exports_and_we_import_its_merge() {
    let python = venv_bin("python");
    if !python.is_file() {
        latent_terms_io::missing_asset(&format!(
            "SKIPPED: {} is missing; run scripts/setup-assets --lucene to install ciff-toolkit",
            python.display()
        ));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let script = root().join("scripts/ciff-toolkit-dump.py");

    // A lexical index with two segments (one vocabulary) and deletes, and a latent one.
    let analyzer = Analyzer::english();
    let mut vocab = Vocabulary::new();
    let mut first = IndexBuilder::new(IndexConfig::lexical()).expect("config");
    let mut second = IndexBuilder::new(IndexConfig::lexical()).expect("config");
    for i in 0..400 {
        let v = vocab.add_document(&analyzer, &text(i)).expect("fits");
        let b = if i < 300 { &mut first } else { &mut second };
        b.add(format!("d{i:04}"), &v).expect("added");
    }
    let mut index2 = first.build().expect("built");
    index2
        .add_segment(second.build_segment().expect("built"))
        .expect("segment");
    index2.set_vocabulary(vocab).expect("covers");
    assert_eq!(index2.num_segments(), 2);
    for i in (0..400).step_by(7) {
        index2.delete(&format!("d{i:04}"));
    }
    let mut latent_b = IndexBuilder::new(IndexConfig::lexical()).expect("config");
    for i in 0..200u32 {
        let v = SparseVector::new([(i % 17, 1.0 + (i % 5) as f32), (1000 + i % 3, 2.0)])
            .expect("valid");
        latent_b.add(format!("p{i:03}"), &v).expect("added");
    }
    let latent = latent_b.build().expect("built");

    for (name, ix) in [("lexical", &index2), ("latent", &latent)] {
        let path = dir.path().join(format!("{name}.ciff"));
        write_ciff(ix, &DotProduct, None, name, &path).expect("export");
        let dump = run(Command::new(&python).arg(&script).arg(&path));
        assert_eq!(
            dump,
            expected_dump(ix),
            "{name}: ciff-toolkit sees other data"
        );
        eprintln!(
            "{name}: ciff-toolkit read {} lines, identical to the index",
            dump.lines().count()
        );
    }

    // ciff-toolkit writes, we read: merge two halves, import, compare with the whole.
    let even = lexical((0..400).step_by(2));
    let odd = lexical((1..400).step_by(2));
    let (a, b) = (dir.path().join("even.ciff"), dir.path().join("odd.ciff"));
    write_ciff(&even, &DotProduct, None, "even", &a).expect("export");
    write_ciff(&odd, &DotProduct, None, "odd", &b).expect("export");
    let merged = dir.path().join("merged.ciff");
    run(Command::new(venv_bin("ciff_merge"))
        .arg(&a)
        .arg(&b)
        .arg(&merged));
    let imported = import_ciff(&merged).expect("import of ciff-toolkit's file");
    let whole = lexical(0..400);
    assert_eq!(imported.num_docs(), 400);
    assert_eq!(postings_by_name(&imported), postings_by_name(&whole));
    eprintln!(
        "ciff_merge output imported: {} documents, {} terms, postings identical",
        imported.num_docs(),
        imported.term_ids().len()
    );
}
