//! The usage model of the cluster resource scheduler (spec 3.11): what
//! each online node carries, and the order in which candidate nodes are
//! tried for a service (`basic`: fewest services; `static`/`dynamic`:
//! TOPSIS over CPU and memory load).

use std::collections::BTreeMap;

use crate::domain::{CrsMode, CrsOptions, NodeName, Sid};

/// A node's capacity and its measured usage (the latter only for
/// `dynamic`; it includes every guest the node runs, HA or not).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeStats {
    /// CPU count.
    pub maxcpu: f64,
    /// Memory in bytes.
    pub maxmem: f64,
    /// Measured CPU usage in cores.
    pub cpu: f64,
    /// Measured memory usage in bytes.
    pub mem: f64,
}

/// A service's configured limits and measured usage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServiceStats {
    /// Configured CPUs (0 = unlimited: the whole node).
    pub maxcpu: f64,
    /// Configured memory in bytes.
    pub maxmem: f64,
    /// Measured CPU usage in cores (`dynamic`).
    pub cpu: f64,
    /// Measured memory in bytes (`dynamic`).
    pub mem: f64,
}

/// What the scheduler reads besides the service records: the `crs`
/// options, node and service statistics, and the running guests that HA
/// does not manage (they load their node too).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scheduling {
    /// The `crs` options of datacenter.cfg.
    pub crs: CrsOptions,
    /// Capacity (and measured usage) per node.
    pub node_stats: BTreeMap<NodeName, NodeStats>,
    /// Limits (and measured usage) per service.
    pub service_stats: BTreeMap<Sid, ServiceStats>,
    /// Running guests not managed by HA, per node.
    pub non_ha: BTreeMap<NodeName, Vec<ServiceStats>>,
}

/// What one service adds to a node.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    /// CPU in cores.
    pub cpu: f64,
    /// Memory in bytes.
    pub mem: f64,
    /// A CPU of 0 stands for "unlimited": the node's whole CPU count.
    pub zero_cpu_is_whole_node: bool,
}

impl Load {
    /// The configured limits of a service (static accounting).
    pub fn limits(stats: &ServiceStats) -> Load {
        Load {
            cpu: stats.maxcpu,
            mem: stats.maxmem,
            zero_cpu_is_whole_node: true,
        }
    }

    /// The measured usage of a running service.
    pub fn measured(stats: &ServiceStats) -> Load {
        Load {
            cpu: stats.cpu,
            mem: stats.mem,
            zero_cpu_is_whole_node: false,
        }
    }
}

/// What one node carries.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeUsage {
    /// Services and guests using the node (the `basic` score).
    pub count: usize,
    /// CPU in cores.
    pub cpu: f64,
    /// Memory in bytes.
    pub mem: f64,
    /// CPU count.
    pub maxcpu: f64,
    /// Memory in bytes.
    pub maxmem: f64,
}

impl NodeUsage {
    /// CPU load as a fraction of the capacity.
    pub fn cpu_load(&self) -> f64 {
        if self.maxcpu > 0.0 {
            self.cpu / self.maxcpu
        } else {
            0.0
        }
    }

    /// Memory load as a fraction of the capacity.
    pub fn mem_load(&self) -> f64 {
        if self.maxmem > 0.0 {
            self.mem / self.maxmem
        } else {
            0.0
        }
    }

    fn add(&mut self, load: &Load) {
        self.count += 1;
        self.cpu += if load.zero_cpu_is_whole_node && load.cpu <= 0.0 {
            self.maxcpu
        } else {
            load.cpu
        };
        self.mem += load.mem;
    }

    fn sub(&mut self, load: &Load) {
        self.count = self.count.saturating_sub(1);
        self.cpu -= if load.zero_cpu_is_whole_node && load.cpu <= 0.0 {
            self.maxcpu
        } else {
            load.cpu
        };
        self.mem -= load.mem;
    }
}

/// The usage of the online nodes (exactly the nodes a service may be
/// placed on this round).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    mode: CrsMode,
    nodes: BTreeMap<NodeName, NodeUsage>,
}

/// TOPSIS weights of the four criteria (average CPU, highest CPU,
/// average memory, highest memory), before normalising to sum 1.
const WEIGHTS: [f64; 4] = [1.0, 2.0, 5.0, 10.0];

impl Usage {
    /// An empty `basic` model.
    pub fn new() -> Self {
        Usage::default()
    }

    /// A `basic` model from service counts (tests, benchmarks).
    pub fn from_counts(counts: impl IntoIterator<Item = (NodeName, usize)>) -> Self {
        Usage {
            mode: CrsMode::Basic,
            nodes: counts
                .into_iter()
                .map(|(n, count)| {
                    (
                        n,
                        NodeUsage {
                            count,
                            ..NodeUsage::default()
                        },
                    )
                })
                .collect(),
        }
    }

    /// The model for `online` nodes in `mode`, before any HA service is
    /// added: capacities, the measured usage (`dynamic`) and the running
    /// non-HA guests. Fails, naming the node, if `static`/`dynamic` lack
    /// a node's capacity.
    pub fn init<'a>(
        mode: CrsMode,
        online: impl IntoIterator<Item = &'a NodeName>,
        scheduling: &Scheduling,
    ) -> Result<Usage, String> {
        let mut nodes = BTreeMap::new();
        for node in online {
            let mut usage = NodeUsage::default();
            if mode != CrsMode::Basic {
                let stats = scheduling
                    .node_stats
                    .get(node)
                    .filter(|s| s.maxcpu > 0.0 && s.maxmem > 0.0)
                    .ok_or_else(|| format!("no CPU and memory capacity known for node '{node}'"))?;
                usage.maxcpu = stats.maxcpu;
                usage.maxmem = stats.maxmem;
                if mode == CrsMode::Dynamic {
                    usage.cpu = stats.cpu;
                    usage.mem = stats.mem;
                }
            }
            for guest in scheduling.non_ha.get(node).into_iter().flatten() {
                match mode {
                    CrsMode::Basic => usage.count += 1,
                    CrsMode::Static => usage.add(&Load::limits(guest)),
                    // Already in the measured node usage.
                    CrsMode::Dynamic => usage.count += 1,
                }
            }
            nodes.insert(node.clone(), usage);
        }
        Ok(Usage { mode, nodes })
    }

    /// The scheduler mode this model scores with.
    pub fn mode(&self) -> CrsMode {
        self.mode
    }

    /// `node` is online (in the model).
    pub fn contains_key(&self, node: &NodeName) -> bool {
        self.nodes.contains_key(node)
    }

    /// The online nodes, by name.
    pub fn keys(&self) -> impl Iterator<Item = &NodeName> {
        self.nodes.keys()
    }

    /// One node's usage.
    pub fn get(&self, node: &NodeName) -> Option<&NodeUsage> {
        self.nodes.get(node)
    }

    /// Every node's usage, by name.
    pub fn nodes(&self) -> &BTreeMap<NodeName, NodeUsage> {
        &self.nodes
    }

    /// Adds a service's load to `node` (nothing if it is not online).
    pub fn add(&mut self, node: &NodeName, load: &Load) {
        if let Some(u) = self.nodes.get_mut(node) {
            u.add(load);
        }
    }

    /// Takes a service's load off `node`.
    pub fn sub(&mut self, node: &NodeName, load: &Load) {
        if let Some(u) = self.nodes.get_mut(node) {
            u.sub(load);
        }
    }

    /// Sorts `candidates` best first for a service that would add `load`
    /// (spec 3.10 step 10): `basic` by service count, `static`/`dynamic`
    /// by TOPSIS; ties, and a `None` load (stats missing), by node name.
    pub fn order(&self, candidates: &mut [&NodeName], load: Option<&Load>) {
        let Some(load) = load else {
            candidates.sort();
            return;
        };
        if self.mode == CrsMode::Basic {
            candidates.sort_by(|a, b| {
                let ca = self.nodes.get(*a).map_or(0, |u| u.count);
                let cb = self.nodes.get(*b).map_or(0, |u| u.count);
                ca.cmp(&cb).then_with(|| a.cmp(b))
            });
            return;
        }
        let rows: Vec<[f64; 4]> = self.criteria_if_added(candidates, load);
        let scores = topsis(&rows);
        let mut ranked: Vec<(f64, &NodeName)> =
            scores.into_iter().zip(candidates.iter().copied()).collect();
        ranked.sort_by(|(sa, a), (sb, b)| sb.total_cmp(sa).then_with(|| a.cmp(b)));
        for (slot, (_, node)) in candidates.iter_mut().zip(ranked) {
            *slot = node;
        }
    }

    /// The scores [`Usage::order`] ranks `candidates` by, for showing a
    /// decision (`explain`): the service count for `basic`, the TOPSIS
    /// closeness for `static`/`dynamic` (computed over `candidates`, as
    /// the order was), none when the load is unknown.
    pub fn scored<'n>(
        &self,
        candidates: &[&'n NodeName],
        load: Option<&Load>,
    ) -> Vec<(&'n NodeName, Option<f64>)> {
        let Some(load) = load else {
            return candidates.iter().map(|n| (*n, None)).collect();
        };
        if self.mode == CrsMode::Basic {
            return candidates
                .iter()
                .map(|n| (*n, self.nodes.get(*n).map(|u| u.count as f64)))
                .collect();
        }
        let scores = topsis(&self.criteria_if_added(candidates, load));
        candidates
            .iter()
            .zip(scores)
            .map(|(n, s)| (*n, Some(s)))
            .collect()
    }

    /// The four criteria of the cluster after adding `load` to each
    /// candidate in turn. O(nodes + candidates): only the candidate's own
    /// load changes, so sums of squares and the two highest loads are
    /// computed once.
    fn criteria_if_added(&self, candidates: &[&NodeName], load: &Load) -> Vec<[f64; 4]> {
        let n = self.nodes.len().max(1) as f64;
        let (mut sq_cpu, mut sq_mem) = (0.0, 0.0);
        let mut top_cpu = Top2::default();
        let mut top_mem = Top2::default();
        for (name, u) in &self.nodes {
            let (c, m) = (u.cpu_load(), u.mem_load());
            sq_cpu += c * c;
            sq_mem += m * m;
            top_cpu.push(name, c);
            top_mem.push(name, m);
        }
        candidates
            .iter()
            .map(|node| {
                let Some(u) = self.nodes.get(*node) else {
                    return [f64::MAX; 4];
                };
                let mut after = *u;
                after.add(load);
                let (c0, m0) = (u.cpu_load(), u.mem_load());
                let (c1, m1) = (after.cpu_load(), after.mem_load());
                let cpu_sq = (sq_cpu - c0 * c0 + c1 * c1).max(0.0);
                let mem_sq = (sq_mem - m0 * m0 + m1 * m1).max(0.0);
                [
                    1.0 + (cpu_sq / n).sqrt(),
                    1.0 + top_cpu.max_without(node).max(c1),
                    1.0 + (mem_sq / n).sqrt(),
                    1.0 + top_mem.max_without(node).max(m1),
                ]
            })
            .collect()
    }

    /// The four criteria of the cluster as it is.
    pub fn criteria(&self) -> [f64; 4] {
        criteria_of(self.nodes.values())
    }

    /// The imbalance (spec 3.11.6): population standard deviation over
    /// mean of the node loads, a node's load being the mean of its CPU
    /// and memory fractions; 0 with fewer than two nodes or no load.
    pub fn imbalance(&self) -> f64 {
        imbalance_of(self.nodes.values())
    }
}

/// The four TOPSIS criteria over `nodes`.
pub fn criteria_of<'a>(nodes: impl Iterator<Item = &'a NodeUsage>) -> [f64; 4] {
    let (mut n, mut sq_cpu, mut sq_mem, mut max_cpu, mut max_mem) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for u in nodes {
        let (c, m) = (u.cpu_load(), u.mem_load());
        n += 1.0;
        sq_cpu += c * c;
        sq_mem += m * m;
        max_cpu = f64::max(max_cpu, c);
        max_mem = f64::max(max_mem, m);
    }
    let n = f64::max(n, 1.0);
    [
        1.0 + (sq_cpu / n).sqrt(),
        1.0 + max_cpu,
        1.0 + (sq_mem / n).sqrt(),
        1.0 + max_mem,
    ]
}

/// Coefficient of variation of the node loads.
pub fn imbalance_of<'a>(nodes: impl Iterator<Item = &'a NodeUsage>) -> f64 {
    let loads: Vec<f64> = nodes.map(|u| (u.cpu_load() + u.mem_load()) / 2.0).collect();
    if loads.len() < 2 {
        return 0.0;
    }
    let n = loads.len() as f64;
    let mean = loads.iter().sum::<f64>() / n;
    if mean <= 0.0 {
        return 0.0;
    }
    let var = loads.iter().map(|l| (l - mean) * (l - mean)).sum::<f64>() / n;
    var.sqrt() / mean
}

/// TOPSIS closeness of each alternative (all criteria minimised, weights
/// [`WEIGHTS`] normalised): higher is better.
pub fn topsis(rows: &[[f64; 4]]) -> Vec<f64> {
    let total: f64 = WEIGHTS.iter().sum();
    let mut norm = [0.0f64; 4];
    for row in rows {
        for (k, v) in row.iter().enumerate() {
            norm[k] += v * v;
        }
    }
    let norm = norm.map(f64::sqrt);
    let scaled: Vec<[f64; 4]> = rows
        .iter()
        .map(|row| {
            let mut out = [0.0; 4];
            for k in 0..4 {
                let v = if norm[k] > 0.0 {
                    row[k] / norm[k]
                } else {
                    row[k]
                };
                out[k] = v * WEIGHTS[k] / total;
            }
            out
        })
        .collect();
    let mut best = [f64::INFINITY; 4];
    let mut worst = [f64::NEG_INFINITY; 4];
    for row in &scaled {
        for k in 0..4 {
            best[k] = best[k].min(row[k]);
            worst[k] = worst[k].max(row[k]);
        }
    }
    scaled
        .iter()
        .map(|row| {
            let (mut plus, mut minus) = (0.0, 0.0);
            for k in 0..4 {
                plus += (row[k] - best[k]).powi(2);
                minus += (row[k] - worst[k]).powi(2);
            }
            let (plus, minus) = (plus.sqrt(), minus.sqrt());
            if plus + minus > 0.0 {
                minus / (plus + minus)
            } else {
                0.0
            }
        })
        .collect()
}

/// The two highest values and who holds the highest.
#[derive(Debug, Default)]
struct Top2<'a> {
    first: Option<(&'a NodeName, f64)>,
    second: f64,
}

impl<'a> Top2<'a> {
    fn push(&mut self, node: &'a NodeName, value: f64) {
        match self.first {
            Some((_, f)) if value <= f => self.second = self.second.max(value),
            Some((_, f)) => {
                self.second = f;
                self.first = Some((node, value));
            }
            None => self.first = Some((node, value)),
        }
    }

    /// The highest value among the nodes other than `node`.
    fn max_without(&self, node: &NodeName) -> f64 {
        match self.first {
            Some((n, _)) if n == node => self.second,
            Some((_, f)) => f,
            None => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeName {
        s.parse().unwrap()
    }

    fn stats(maxcpu: f64, maxmem: f64) -> NodeStats {
        NodeStats {
            maxcpu,
            maxmem,
            ..NodeStats::default()
        }
    }

    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

    #[test]
    fn static_prefers_the_node_with_the_most_room() {
        let mut sched = Scheduling::default();
        for node in ["node1", "node2", "node3"] {
            sched.node_stats.insert(n(node), stats(8.0, 16.0 * GIB));
        }
        let online = [n("node1"), n("node2"), n("node3")];
        let mut usage = Usage::init(CrsMode::Static, &online, &sched).unwrap();
        let big = Load::limits(&ServiceStats {
            maxcpu: 4.0,
            maxmem: 8.0 * GIB,
            ..ServiceStats::default()
        });
        usage.add(&n("node1"), &big);
        let small = Load::limits(&ServiceStats {
            maxcpu: 1.0,
            maxmem: GIB,
            ..ServiceStats::default()
        });
        usage.add(&n("node2"), &small);
        let mut cands: Vec<&NodeName> = online.iter().collect();
        usage.order(&mut cands, Some(&small));
        assert_eq!(cands, [&n("node3"), &n("node2"), &n("node1")]);
        // all equal: by name
        let empty = Usage::init(CrsMode::Static, &online, &sched).unwrap();
        let mut cands: Vec<&NodeName> = online.iter().rev().collect();
        empty.order(&mut cands, Some(&small));
        assert_eq!(cands, [&n("node1"), &n("node2"), &n("node3")]);
        // stats missing: by name, whatever the load
        let mut cands: Vec<&NodeName> = online.iter().rev().collect();
        usage.order(&mut cands, None);
        assert_eq!(cands, [&n("node1"), &n("node2"), &n("node3")]);
    }

    #[test]
    fn memory_weighs_more_than_cpu() {
        let mut sched = Scheduling::default();
        sched.node_stats.insert(n("a"), stats(8.0, 16.0 * GIB));
        sched.node_stats.insert(n("b"), stats(8.0, 16.0 * GIB));
        let online = [n("a"), n("b")];
        let mut usage = Usage::init(CrsMode::Static, &online, &sched).unwrap();
        // a: CPU-heavy, b: memory-heavy
        usage.add(
            &n("a"),
            &Load::limits(&ServiceStats {
                maxcpu: 6.0,
                maxmem: GIB,
                ..ServiceStats::default()
            }),
        );
        usage.add(
            &n("b"),
            &Load::limits(&ServiceStats {
                maxcpu: 1.0,
                maxmem: 10.0 * GIB,
                ..ServiceStats::default()
            }),
        );
        let load = Load::limits(&ServiceStats {
            maxcpu: 1.0,
            maxmem: GIB,
            ..ServiceStats::default()
        });
        let mut cands: Vec<&NodeName> = online.iter().collect();
        usage.order(&mut cands, Some(&load));
        assert_eq!(cands[0], &n("a"));
    }

    #[test]
    fn init_fails_without_capacity_and_counts_non_ha_guests() {
        let online = [n("node1"), n("node2")];
        let mut sched = Scheduling::default();
        sched.node_stats.insert(n("node1"), stats(4.0, GIB));
        let err = Usage::init(CrsMode::Static, &online, &sched).unwrap_err();
        assert!(err.contains("node2"), "{err}");
        sched.node_stats.insert(n("node2"), stats(4.0, GIB));
        sched.non_ha.insert(
            n("node2"),
            vec![ServiceStats {
                maxcpu: 0.0,
                maxmem: GIB / 2.0,
                ..ServiceStats::default()
            }],
        );
        let usage = Usage::init(CrsMode::Static, &online, &sched).unwrap();
        let u2 = usage.get(&n("node2")).unwrap();
        // maxcpu 0 = the whole node
        assert_eq!((u2.count, u2.cpu, u2.mem), (1, 4.0, GIB / 2.0));
        let basic = Usage::init(CrsMode::Basic, &online, &Scheduling::default()).unwrap();
        assert_eq!(basic.get(&n("node1")).unwrap().count, 0);
    }

    #[test]
    fn imbalance_is_the_coefficient_of_variation() {
        let node = |cpu: f64, mem: f64| NodeUsage {
            count: 0,
            cpu,
            mem,
            maxcpu: 1.0,
            maxmem: 1.0,
        };
        // one loaded node out of three: sqrt(2)
        let v = [node(0.5, 0.5), node(0.0, 0.0), node(0.0, 0.0)];
        assert!((imbalance_of(v.iter()) - 2f64.sqrt()).abs() < 1e-9);
        let even = [node(0.5, 0.5), node(0.5, 0.5)];
        assert_eq!(imbalance_of(even.iter()), 0.0);
        assert_eq!(imbalance_of([node(0.0, 0.0); 3].iter()), 0.0);
        assert_eq!(imbalance_of([node(0.9, 0.1)].iter()), 0.0);
    }
}
