//! The latent explorer: a static, self-contained HTML site (no server, no external
//! scripts, styles or fonts) over a collection's latents and evaluated queries.
//!
//! * `index.html`: the latents ranked by document frequency, with the Zipf plot;
//! * `latent/<id>.html`: one card per latent (df, IDF, description, top documents);
//! * `queries.html` and `query/<id>.html`: per evaluated query, its latents and top
//!   results, each with the shared latents that explain its score.
//!
//! A small inline script draws the contribution bars and their percentages from the
//! numbers in the page, and makes tables sortable; everything else is plain HTML.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::cards::LatentCard;
use super::explain::MatchExplanation;
use super::{escape_html as esc, snippet};
use crate::error::{Error, Result};
use crate::pipeline::write_atomic;

/// One ranked result of a query page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultView {
    /// 1-based rank.
    pub rank: usize,
    /// Document title (or opening words).
    pub title: String,
    /// Judged relevant in the qrels.
    pub relevant: bool,
    /// The shared latents behind the score (its `doc` is the document id).
    pub explanation: MatchExplanation,
}

/// One evaluated query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryView {
    /// Query id.
    pub id: String,
    /// Query text.
    pub text: String,
    /// The query's latents `(latent, activation)`, strongest first.
    pub latents: Vec<(u32, f32)>,
    /// Top results with their explanations.
    pub results: Vec<ResultView>,
}

/// What the site shows.
#[derive(Clone, Debug)]
pub struct Site<'a> {
    /// Title of every page.
    pub title: String,
    /// Key facts for the front page (`(name, value)`).
    pub facts: Vec<(String, String)>,
    /// Latent cards, in the order of the front page (by decreasing df).
    pub cards: &'a [LatentCard],
    /// A Zipf plot PNG to copy into the site.
    pub zipf_png: Option<&'a Path>,
    /// Evaluated queries.
    pub queries: &'a [QueryView],
}

/// The path of a latent's page inside the site.
pub fn latent_page(latent: u32) -> String {
    format!("latent/{latent}.html")
}

/// The path of a query's page inside the site (ids are hex-escaped to a safe file name).
pub fn query_page(id: &str) -> String {
    let mut name = String::new();
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            name.push(b as char);
        } else {
            let _ = write!(name, "~{b:02X}");
        }
    }
    format!("query/{name}.html")
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:70em;padding:0 1em;color:#222}\
a{color:#0550ae}table{border-collapse:collapse;margin:.6em 0}th,td{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
th{background:#f3f3f3;cursor:pointer}td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#777}\
.share{white-space:nowrap}.bar{display:inline-block;width:6em;height:.8em;background:#eee;vertical-align:middle}.bar span{display:block;height:100%;background:#3b7dd8;width:0}\
.rel{color:#1a7f37;font-weight:600}.result{border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin:1em 0}nav a{margin-right:1em}img{max-width:100%}";

const SCRIPT: &str = r#"(function(){
var n=0;
document.querySelectorAll('[data-contrib]').forEach(function(el){
  var v=parseFloat(el.getAttribute('data-contrib')),s=parseFloat(el.getAttribute('data-score'));
  var p=s>0?100*v/s:0;
  var bar=el.querySelector('.bar span');if(bar){bar.style.width=Math.max(0,Math.min(100,p)).toFixed(1)+'%';}
  var t=el.querySelector('.pct');if(t){t.textContent=p.toFixed(1)+'%';}
  n++;
});
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th,col){
    th.addEventListener('click',function(){
      var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
      var asc=th.getAttribute('data-dir')!=='asc';th.setAttribute('data-dir',asc?'asc':'desc');
      rows.sort(function(a,b){
        var x=a.cells[col].getAttribute('data-v')||a.cells[col].textContent,y=b.cells[col].getAttribute('data-v')||b.cells[col].textContent;
        var fx=parseFloat(x),fy=parseFloat(y),c=(!isNaN(fx)&&!isNaN(fy))?fx-fy:x.localeCompare(y);
        return asc?c:-c;});
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
});
var st=document.getElementById('rendered');if(st&&n>0){st.textContent='rendered '+n+' contributions';}
document.documentElement.setAttribute('data-rendered','yes');
})();"#;

fn page(site: &Site<'_>, root: &str, heading: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title} — {heading}</title><style>{STYLE}</style></head><body>\n\
<nav><a href=\"{root}index.html\">Latents</a><a href=\"{root}queries.html\">Queries</a>\
<span class=\"muted\" id=\"rendered\"></span></nav>\n<h1>{heading}</h1>\n{body}\n\
<script>{SCRIPT}</script></body></html>\n",
        title = esc(&site.title),
        heading = esc(heading),
    )
}

fn description_cell(card: Option<&LatentCard>) -> String {
    card.and_then(|c| c.description.as_ref())
        .map_or_else(String::new, |d| esc(&d.text))
}

fn index_page(site: &Site<'_>, zipf: bool) -> String {
    let mut b = String::new();
    if !site.facts.is_empty() {
        b.push_str("<table class=\"facts\"><tbody>");
        for (k, v) in &site.facts {
            let _ = write!(b, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
        }
        b.push_str("</tbody></table>\n");
    }
    if zipf {
        b.push_str("<h2>Zipf plot</h2><p><img src=\"zipf.png\" alt=\"Zipf plot: document frequency against rank, words and latents\"></p>\n");
    }
    let _ = write!(
        b,
        "<h2>Latents by document frequency</h2><p class=\"muted\">{} latents; click a column to sort.</p>\n\
<table class=\"sortable\" id=\"latents\"><thead><tr><th>rank</th><th>latent</th><th>df</th><th>idf</th><th>description</th></tr></thead><tbody>\n",
        site.cards.len()
    );
    for (i, c) in site.cards.iter().enumerate() {
        let _ = writeln!(
            b,
            "<tr><td class=\"n\">{}</td><td data-v=\"{l}\"><a href=\"{href}\">{l}</a></td><td class=\"n\">{}</td><td class=\"n\">{:.3}</td><td>{}</td></tr>",
            i + 1,
            c.doc_freq,
            c.idf,
            description_cell(Some(c)),
            l = c.latent,
            href = latent_page(c.latent),
        );
    }
    b.push_str("</tbody></table>");
    page(site, "", &site.title, &b)
}

fn card_page(site: &Site<'_>, card: &LatentCard) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<table class=\"facts\"><tbody><tr><th>document frequency</th><td id=\"df\">{}</td></tr>\
<tr><th>IDF</th><td>{:.4}</td></tr>",
        card.doc_freq, card.idf
    );
    if let Some(d) = &card.description {
        let _ = write!(
            b,
            "<tr><th>description</th><td id=\"description\">{} <span class=\"muted\">({})</span></td></tr>",
            esc(&d.text),
            esc(&d.source)
        );
        if !d.keywords.is_empty() {
            let kw: Vec<String> = d
                .keywords
                .iter()
                .map(|k| format!("{} ({:.1})", esc(&k.word), k.score))
                .collect();
            let _ = write!(
                b,
                "<tr><th>keywords (log-odds z)</th><td>{}</td></tr>",
                kw.join(", ")
            );
        }
    }
    b.push_str("</tbody></table>\n<h2>Top-activating documents</h2>\n<table class=\"sortable\" id=\"top-docs\"><thead><tr><th>rank</th><th>document</th><th>activation</th><th>title</th></tr></thead><tbody>\n");
    for (i, d) in card.top_docs.iter().enumerate() {
        let _ = writeln!(
            b,
            "<tr class=\"doc\"><td class=\"n\">{}</td><td class=\"doc-id\">{}</td><td class=\"n activation\">{:.4}</td><td>{}</td></tr>",
            i + 1,
            esc(&d.id),
            d.activation,
            esc(d.title.as_deref().unwrap_or(""))
        );
    }
    b.push_str("</tbody></table>");
    page(site, "../", &format!("Latent {}", card.latent), &b)
}

fn latent_link(latent: u32, known: &HashSet<u32>, root: &str) -> String {
    if known.contains(&latent) {
        format!("<a href=\"{root}{}\">{latent}</a>", latent_page(latent))
    } else {
        latent.to_string()
    }
}

/// Query latents listed before the rest fold away.
const QUERY_LATENTS_SHOWN: usize = 12;

fn query_body(site: &Site<'_>, q: &QueryView, known: &HashSet<u32>) -> String {
    let card = |l: u32| site.cards.iter().find(|c| c.latent == l);
    let mut b = format!(
        "<p class=\"query-text\">{}</p>\n<h2>Query latents</h2><p>",
        esc(&q.text)
    );
    let parts: Vec<String> = q
        .latents
        .iter()
        .map(|&(l, v)| {
            let d = description_cell(card(l));
            format!(
                "{} <span class=\"muted\">{v:.3}{}</span>",
                latent_link(l, known, "../"),
                if d.is_empty() {
                    String::new()
                } else {
                    format!(" · {d}")
                }
            )
        })
        .collect();
    let shown = parts.len().min(QUERY_LATENTS_SHOWN);
    b.push_str(&parts[..shown].join("; "));
    b.push_str("</p>\n");
    if parts.len() > shown {
        let _ = writeln!(
            b,
            "<details><summary>{} more latents</summary><p>{}</p></details>",
            parts.len() - shown,
            parts[shown..].join("; ")
        );
    }
    b.push_str("<h2>Top results</h2>\n");
    for r in &q.results {
        let e = &r.explanation;
        let _ = write!(
            b,
            "<div class=\"result\" data-doc=\"{doc}\"><h3>{rank}. <span class=\"doc-id\">{doc}</span> {title} {rel}</h3>\
<p class=\"muted\">{scorer} score <span class=\"score\">{score:.4}</span>; {n} shared latents</p>\n\
<table class=\"contributions\"><thead><tr><th>latent</th><th>description</th><th>query</th><th>doc</th><th>idf</th><th>contribution</th><th>share</th></tr></thead><tbody>\n",
            rank = r.rank,
            doc = esc(&e.doc),
            title = esc(&r.title),
            rel = if r.relevant {
                "<span class=\"rel\">relevant</span>"
            } else {
                ""
            },
            scorer = esc(&e.scorer),
            score = e.score,
            n = e.shared.len(),
        );
        for s in &e.shared {
            let _ = writeln!(
                b,
                "<tr data-contrib=\"{c}\" data-score=\"{score}\"><td>{l}</td><td>{d}</td><td class=\"n\">{qw:.3}</td><td class=\"n\">{dw:.3}</td><td class=\"n\">{idf:.3}</td><td class=\"n contribution\">{c:.4}</td><td class=\"share\"><span class=\"bar\"><span></span></span> <span class=\"pct\"></span></td></tr>",
                c = s.contribution,
                score = e.score,
                l = latent_link(s.latent, known, "../"),
                d = s.description.as_deref().map(esc).unwrap_or_default(),
                qw = s.query_weight,
                dw = s.doc_weight,
                idf = s.idf,
            );
        }
        let _ = writeln!(
            b,
            "</tbody><tfoot><tr><th colspan=\"5\">sum</th><td class=\"n total\">{:.4}</td><td></td></tr></tfoot></table></div>",
            e.total()
        );
    }
    b
}

fn queries_page(site: &Site<'_>) -> String {
    let mut b = format!(
        "<p class=\"muted\">{} evaluated queries.</p>\n<table class=\"sortable\" id=\"queries\"><thead><tr><th>query</th><th>text</th><th>first relevant rank</th></tr></thead><tbody>\n",
        site.queries.len()
    );
    for q in site.queries {
        let first = q.results.iter().find(|r| r.relevant).map(|r| r.rank);
        let _ = writeln!(
            b,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td class=\"n\" data-v=\"{}\">{}</td></tr>",
            query_page(&q.id),
            esc(&q.id),
            esc(&snippet(&q.text, 120)),
            first.unwrap_or(usize::MAX / 2),
            first.map_or_else(|| "–".to_owned(), |r| r.to_string()),
        );
    }
    b.push_str("</tbody></table>");
    page(site, "", "Evaluated queries", &b)
}

fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Writes the site into `out` (created if needed); returns the number of pages written.
pub fn write_site(site: &Site<'_>, out: &Path) -> Result<usize> {
    mkdir(&out.join("latent"))?;
    mkdir(&out.join("query"))?;
    let zipf = match site.zipf_png {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
            write_atomic(&out.join("zipf.png"), &bytes)?;
            true
        }
        None => false,
    };
    write_atomic(&out.join("index.html"), index_page(site, zipf).as_bytes())?;
    write_atomic(&out.join("queries.html"), queries_page(site).as_bytes())?;
    let mut pages = 2;
    for c in site.cards {
        write_atomic(
            &out.join(latent_page(c.latent)),
            card_page(site, c).as_bytes(),
        )?;
        pages += 1;
    }
    let known: HashSet<u32> = site.cards.iter().map(|c| c.latent).collect();
    for q in site.queries {
        let html = page(
            site,
            "../",
            &format!("Query {}", q.id),
            &query_body(site, q, &known),
        );
        write_atomic(&out.join(query_page(&q.id)), html.as_bytes())?;
        pages += 1;
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interpret::cards::CardDoc;
    use crate::interpret::explain::SharedLatent;

    #[test]
    fn site_escapes_text_and_links_pages() {
        let cards = vec![LatentCard {
            latent: 5,
            doc_freq: 2,
            idf: 1.5,
            top_docs: vec![CardDoc {
                id: "d<1>".into(),
                activation: 0.5,
                title: Some("A & B".into()),
            }],
            description: None,
        }];
        let queries = vec![QueryView {
            id: "q 1/x".into(),
            text: "<script>alert(1)</script>".into(),
            latents: vec![(5, 0.7), (9, 0.1)],
            results: vec![ResultView {
                rank: 1,
                title: "t".into(),
                relevant: true,
                explanation: MatchExplanation {
                    query: "q 1/x".into(),
                    doc: "d<1>".into(),
                    scorer: "clsr".into(),
                    score: 2.0,
                    shared: vec![SharedLatent {
                        latent: 5,
                        query_weight: 0.7,
                        doc_weight: 0.5,
                        idf: 1.0,
                        contribution: 2.0,
                        description: None,
                    }],
                },
            }],
        }];
        let site = Site {
            title: "test".into(),
            facts: vec![("docs".into(), "3".into())],
            cards: &cards,
            zipf_png: None,
            queries: &queries,
        };
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(write_site(&site, dir.path()).unwrap(), 4);
        assert_eq!(query_page("q 1/x"), "query/q~201~2Fx.html");
        let q = std::fs::read_to_string(dir.path().join(query_page("q 1/x"))).unwrap();
        assert!(q.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!q.contains("<script>alert"));
        assert!(q.contains("<a href=\"../latent/5.html\">5</a>"));
        assert!(q.contains("9 <span"), "unknown latents are not linked");
        let card = std::fs::read_to_string(dir.path().join("latent/5.html")).unwrap();
        assert!(card.contains("d&lt;1&gt;") && card.contains("A &amp; B"));
        let index = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
        assert!(index.contains("href=\"latent/5.html\"") && !index.contains("zipf.png"));
        assert!(!index.contains("http://") && !index.contains("https://"));
    }
}
