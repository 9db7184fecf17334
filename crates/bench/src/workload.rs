//! The synthetic vectors the store and HTTP benchmarks run on, and how their answers are
//! checked against exact search.

use mnemo_store::{
    Filter, NearestQuery, PayloadSelection, PointId, ScoredPoint, SearchRequest, Vector,
};

use crate::stats::Rng;

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// Clustered like real embeddings: 100 topics (random centres), each point its topic's centre
/// plus a variation within the topic along 24 topic-specific directions, plus a little noise in
/// every dimension. Sentence embeddings vary along few directions within a topic; isotropic
/// noise in all 384 would be a harder and less realistic case for any approximate index.
pub struct Topics {
    centres: Vec<Vec<f32>>,
    directions: Vec<Vec<Vec<f32>>>,
}

impl Topics {
    pub fn new(dim: usize, rng: &mut Rng) -> Self {
        let unit = |rng: &mut Rng| normalised((0..dim).map(|_| rng.normal()).collect());
        let centres = (0..100).map(|_| unit(rng)).collect();
        let directions = (0..100)
            .map(|_| (0..24).map(|_| unit(rng)).collect())
            .collect();
        Self {
            centres,
            directions,
        }
    }

    pub fn sample(&self, count: usize, rng: &mut Rng) -> Vec<Vec<f32>> {
        let dim = self.centres[0].len();
        (0..count)
            .map(|_| {
                let topic = (rng.next() % self.centres.len() as u64) as usize;
                let mut v = self.centres[topic].clone();
                for direction in &self.directions[topic] {
                    let weight = 0.25 * rng.normal();
                    v.iter_mut()
                        .zip(direction)
                        .for_each(|(x, d)| *x += weight * d);
                }
                let noise = 0.3 / (dim as f32).sqrt();
                v.iter_mut().for_each(|x| *x += noise * rng.normal());
                normalised(v)
            })
            .collect()
    }
}

/// The exact top 10 by dot product (vectors are normalised: cosine), optionally among `keep`.
pub fn exact_top(vectors: &[Vec<f32>], query: &[f32], keep: impl Fn(usize) -> bool) -> Vec<u64> {
    // A running top 10, best first: no allocation per vector, so the baseline does not
    // inflate the process's memory figures.
    let mut top: Vec<(f32, usize)> = Vec::with_capacity(11);
    for (i, v) in vectors.iter().enumerate().filter(|(i, _)| keep(*i)) {
        let score = v.iter().zip(query).map(|(a, b)| a * b).sum::<f32>();
        if top.len() == 10 && top[9].0 >= score {
            continue;
        }
        let at = top.partition_point(|(s, _)| *s >= score);
        top.insert(at, (score, i));
        top.truncate(10);
    }
    top.into_iter().map(|(_, i)| i as u64).collect()
}

pub fn search_request(query: &[f32], ef: usize, filter: Option<Filter>) -> SearchRequest {
    let mut request = SearchRequest::new(
        NearestQuery {
            using: String::new(),
            vector: Vector::Dense(query.to_vec()),
        },
        10,
    );
    request.ef = Some(ef);
    request.filter = filter;
    request.with_payload = PayloadSelection::None;
    request
}

pub fn ids(hits: &[ScoredPoint]) -> Vec<u64> {
    hits.iter()
        .filter_map(|h| {
            if let PointId::Num(n) = h.id {
                Some(n)
            } else {
                None
            }
        })
        .collect()
}

pub fn recall(found: &[u64], truth: &[u64]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    found.iter().filter(|id| truth.contains(id)).count() as f64 / truth.len() as f64
}
