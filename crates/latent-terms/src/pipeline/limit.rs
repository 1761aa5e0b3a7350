//! LIMIT-style collections (Weller et al. 2025): "<name> likes A, B, …" documents,
//! "Who likes A?" queries with exactly two relevant documents each, and distractor
//! people who like only attributes no query asks about. Used to study the 50k-document
//! setting where single-vector retrievers fail.

use std::collections::BTreeSet;
use std::path::Path;

use latent_terms_eval::Qrels;
use latent_terms_eval::beir::{Document, Query, write_dataset};
use latent_terms_sparse_index::SplitMix64;

use crate::error::{Error, Result};

const FIRST: [&str; 40] = [
    "Ada", "Basil", "Cora", "Dmitri", "Elsa", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kaia",
    "Leon", "Mira", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Soren", "Tilda", "Umar", "Vera",
    "Wade", "Xenia", "Yusuf", "Zora", "Amos", "Bettina", "Cyrus", "Delia", "Emil", "Flora",
    "Gideon", "Hana", "Ivo", "Juno", "Kurt", "Lena", "Milo", "Nora",
];
const LAST: [&str; 40] = [
    "Abbott",
    "Brandt",
    "Castillo",
    "Dorsey",
    "Engel",
    "Fairbanks",
    "Galloway",
    "Hargrove",
    "Iverson",
    "Jablonski",
    "Kowalski",
    "Lindqvist",
    "Marchetti",
    "Novak",
    "Okafor",
    "Pellegrini",
    "Quintero",
    "Rasmussen",
    "Sorensen",
    "Takahashi",
    "Underwood",
    "Valdez",
    "Whitaker",
    "Xiong",
    "Yamamoto",
    "Zimmerman",
    "Ashdown",
    "Bellamy",
    "Crowther",
    "Delacroix",
    "Ellsworth",
    "Fontaine",
    "Greaves",
    "Holloway",
    "Ingram",
    "Jessup",
    "Kilbride",
    "Lockhart",
    "Mayfield",
    "Northcott",
];
const ADJECTIVES: [&str; 48] = [
    "Red", "Blue", "Green", "Golden", "Silver", "Wild", "Tiny", "Giant", "Ancient", "Modern",
    "Frozen", "Spicy", "Sweet", "Sour", "Salty", "Smoky", "Striped", "Spotted", "Velvet",
    "Crystal", "Desert", "Mountain", "River", "Ocean", "Forest", "Arctic", "Tropical", "Urban",
    "Rustic", "Electric", "Acoustic", "Vintage", "Baroque", "Gothic", "Nordic", "Alpine", "Lunar",
    "Solar", "Misty", "Stormy", "Quiet", "Loud", "Paper", "Wooden", "Marble", "Copper", "Jade",
    "Amber",
];
const NOUNS: [&str; 48] = [
    "Otters",
    "Tapirs",
    "Pangolins",
    "Quokkas",
    "Herons",
    "Lynxes",
    "Beetles",
    "Orchids",
    "Tulips",
    "Ferns",
    "Cacti",
    "Mangoes",
    "Lemons",
    "Figs",
    "Olives",
    "Truffles",
    "Noodles",
    "Dumplings",
    "Pretzels",
    "Waffles",
    "Sonatas",
    "Ballads",
    "Operas",
    "Marches",
    "Violins",
    "Banjos",
    "Harps",
    "Drums",
    "Kites",
    "Lanterns",
    "Compasses",
    "Telescopes",
    "Maps",
    "Puzzles",
    "Riddles",
    "Sculptures",
    "Murals",
    "Quilts",
    "Tapestries",
    "Canoes",
    "Gliders",
    "Trains",
    "Castles",
    "Lighthouses",
    "Bridges",
    "Glaciers",
    "Volcanoes",
    "Canyons",
];

/// Size and shape of a generated collection.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitSpec {
    /// Documents in total (core people plus distractors).
    pub docs: usize,
    /// Core people: the only ones any query is about (LIMIT uses 46).
    pub core_docs: usize,
    /// Queries; each asks about one attribute liked by exactly two core people, a
    /// different pair per query, so at most `core_docs · (core_docs − 1) / 2`.
    pub queries: usize,
    /// Attributes each person likes (LIMIT-small documents list about 50).
    pub likes_per_doc: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for LimitSpec {
    fn default() -> Self {
        LimitSpec {
            docs: 50_000,
            core_docs: 46,
            queries: 1000,
            likes_per_doc: 50,
            seed: 0,
        }
    }
}

/// A generated collection in memory.
#[derive(Clone, Debug)]
pub struct LimitCollection {
    /// The corpus.
    pub docs: Vec<Document>,
    /// The queries.
    pub queries: Vec<Query>,
    /// Two relevant documents per query.
    pub qrels: Qrels,
}

/// LIMIT's draws: `next_u64 % n`, kept so that a seed generates the same collection as
/// before the generator was shared.
struct SplitMix(SplitMix64);

impl SplitMix {
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

fn attribute(i: usize) -> String {
    format!(
        "{} {}",
        ADJECTIVES[i % ADJECTIVES.len()],
        NOUNS[(i / ADJECTIVES.len()) % NOUNS.len()]
    )
}

fn person(i: usize) -> String {
    let first = FIRST[i % FIRST.len()];
    let last = LAST[(i / FIRST.len()) % LAST.len()];
    let block = i / (FIRST.len() * LAST.len());
    if block == 0 {
        format!("{first} {last}")
    } else {
        // A middle initial (then a number) keeps names unique beyond 1,600 people.
        let initial = (b'A' + (block - 1) as u8 % 26) as char;
        let round = (block - 1) / 26;
        if round == 0 {
            format!("{first} {initial}. {last}")
        } else {
            format!("{first} {initial}. {last} {}", round + 1)
        }
    }
}

/// Generates a collection.
///
/// ```
/// use latent_terms::pipeline::{LimitSpec, generate_limit};
///
/// let c = generate_limit(&LimitSpec { docs: 100, core_docs: 10, queries: 20, likes_per_doc: 8, seed: 1 })?;
/// assert_eq!(c.docs.len(), 100);
/// assert_eq!(c.queries.len(), 20);
/// assert!(c.qrels.iter().all(|q| q.len() == 2));
/// assert!(c.queries[0].text.starts_with("Who likes "));
/// # Ok::<(), latent_terms::Error>(())
/// ```
pub fn generate_limit(spec: &LimitSpec) -> Result<LimitCollection> {
    let LimitSpec {
        docs,
        core_docs,
        queries,
        likes_per_doc,
        seed,
    } = spec.clone();
    let pairs = core_docs * core_docs.saturating_sub(1) / 2;
    let attributes = ADJECTIVES.len() * NOUNS.len();
    let bad = |m: String| Err(Error::Invalid(format!("LIMIT generator: {m}")));
    if core_docs < 2 || core_docs > docs {
        return bad(format!(
            "need 2 <= core_docs <= docs, got {core_docs} and {docs}"
        ));
    }
    if queries == 0 || queries > pairs {
        return bad(format!(
            "queries must be in 1..={pairs} for {core_docs} core people"
        ));
    }
    if likes_per_doc == 0 {
        return bad("likes_per_doc must be positive".into());
    }
    // Query attributes come first; the rest are the fillers people also like.
    let fillers = attributes - queries;
    if fillers < likes_per_doc {
        return bad(format!(
            "{queries} queries leave {fillers} filler attributes, fewer than likes_per_doc {likes_per_doc}"
        ));
    }
    let max_people = FIRST.len() * LAST.len() * (1 + 26 * 1000);
    if docs > max_people {
        return bad(format!("at most {max_people} documents"));
    }
    let mut rng = SplitMix(SplitMix64::new(seed ^ 0x004c_494d_4954));
    let mut attr_order: Vec<usize> = (0..attributes).collect();
    rng.shuffle(&mut attr_order);
    let (query_attrs, filler_attrs) = attr_order.split_at(queries);
    let mut all_pairs: Vec<(usize, usize)> = (0..core_docs)
        .flat_map(|a| (a + 1..core_docs).map(move |b| (a, b)))
        .collect();
    rng.shuffle(&mut all_pairs);
    let mut people: Vec<usize> = (0..docs).collect();
    rng.shuffle(&mut people);
    let names: Vec<String> = people.iter().map(|&p| person(p)).collect();

    let mut likes: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); docs];
    let mut qs = Vec::with_capacity(queries);
    let mut qrels = Qrels::new();
    for (qi, (&attr, &(a, b))) in query_attrs.iter().zip(&all_pairs).enumerate() {
        likes[a].insert(attr);
        likes[b].insert(attr);
        let id = format!("query_{qi}");
        qs.push(Query {
            id: id.clone(),
            text: format!("Who likes {}?", attribute(attr)),
        });
        qrels.insert(&id, &names[a], 1);
        qrels.insert(&id, &names[b], 1);
    }
    for set in &mut likes {
        while set.len() < likes_per_doc {
            set.insert(filler_attrs[rng.below(filler_attrs.len())]);
        }
    }
    let docs = names
        .iter()
        .zip(&likes)
        .map(|(name, set)| {
            let mut items: Vec<usize> = set.iter().copied().collect();
            rng.shuffle(&mut items);
            let list: Vec<String> = items.into_iter().map(attribute).collect();
            Document {
                id: name.clone(),
                title: String::new(),
                text: format!("{name} likes {}.", list.join(", ")),
            }
        })
        .collect();
    Ok(LimitCollection {
        docs,
        queries: qs,
        qrels,
    })
}

/// Generates a collection and writes it as a BEIR directory (`corpus.jsonl`,
/// `queries.jsonl`, `qrels/test.tsv`), each file atomically.
pub fn write_limit(spec: &LimitSpec, dir: &Path) -> Result<LimitCollection> {
    let c = generate_limit(spec)?;
    write_dataset(dir, &c.docs, &c.queries, &c.qrels, "test")?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use latent_terms_eval::beir::BeirDataset;

    #[test]
    fn relevant_people_like_the_attribute_and_distractors_do_not() {
        let spec = LimitSpec {
            docs: 300,
            core_docs: 12,
            queries: 60,
            likes_per_doc: 10,
            seed: 7,
        };
        let c = generate_limit(&spec).unwrap();
        let ids: BTreeSet<&str> = c.docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids.len(), 300, "names are unique");
        for q in &c.queries {
            let attr = q
                .text
                .trim_start_matches("Who likes ")
                .trim_end_matches('?');
            let judged = c.qrels.get(&q.id).unwrap();
            assert_eq!(judged.len(), 2);
            for d in &c.docs {
                let likes =
                    d.text.contains(&format!(" {attr},")) || d.text.contains(&format!(" {attr}."));
                assert_eq!(
                    likes,
                    judged.relevance(&d.id).is_some(),
                    "{} / {}",
                    q.text,
                    d.id
                );
            }
        }
        assert!(
            c.docs
                .iter()
                .all(|d| d.text.matches(", ").count() + 1 >= 10)
        );
        // Same seed, same collection.
        let again = generate_limit(&spec).unwrap();
        assert_eq!(again.docs, c.docs);
    }

    #[test]
    fn writes_a_beir_directory_and_rejects_bad_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let spec = LimitSpec {
            docs: 50,
            core_docs: 10,
            queries: 45,
            likes_per_doc: 5,
            seed: 0,
        };
        write_limit(&spec, dir.path()).unwrap();
        let ds = BeirDataset::open(dir.path()).unwrap();
        assert_eq!(ds.corpus().unwrap().count(), 50);
        assert_eq!(ds.qrels("test").unwrap().len(), 45);
        assert!(
            generate_limit(&LimitSpec {
                queries: 46,
                ..spec.clone()
            })
            .is_err()
        );
        assert!(
            generate_limit(&LimitSpec {
                core_docs: 60,
                ..spec
            })
            .is_err()
        );
        assert!(person(5000).contains(". "));
    }
}
