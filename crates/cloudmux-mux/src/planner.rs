//! The claim planner: given what a worker knows, the next thing to do.
//!
//! Pure logic, no I/O: the [worker](crate::Worker) asks [`Planner::next_action`]
//! for an [`Action`], performs it, and reports what it found
//! ([`Planner::claimed`], [`Planner::taken`], [`Planner::listed`],
//! [`Planner::markers`]). Unit tests drive it against a simulated set of
//! claims, without storage.
//!
//! # Strategy
//! - Start at a random index and walk forward while creates succeed; the
//!   indices form a circle, so a walk that passes the last index goes on at
//!   index 0, up to the first index known to be claimed.
//! - After a collision, list one page of claims from a random not-yet-known
//!   index, learn which indices are taken, and jump to the middle of the
//!   largest free run in that page (a random index of a short run). The
//!   listing also shows where that run ends, so the claimed index after it is
//!   never probed. A bitmap of known claims means no index is probed twice.
//! - Page sizes follow the density of claims seen: small pages while gaps are
//!   wide, full pages in the tail.
//! - A page with no free index sets the worker in the tail: before its next
//!   listing it reads the block markers (`full/<k>`) others published, and
//!   skips those blocks; its next listing covers the rest of one unmarked
//!   block, so that it can prove the block full. Blocks it finds fully
//!   claimed itself (by listing, or by walking a whole block) are handed back
//!   ([`Planner::take_full_blocks`]) for publishing.
//! - A worker given a slice (a shard hint) walks it first and stops before
//!   its end, where the next shard started, instead of colliding there.
//! - On a backend whose `start_after` is emulated at extra cost (Azure), a
//!   listing is narrowed by a key prefix of the claim's digits instead
//!   ([`ListMode::DigitPrefix`]): one request per jump everywhere.

/// How listings are narrowed to a range of indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMode {
    /// `start_after` the key before the range (S3, GCS, memory, local).
    StartAfter,
    /// A key prefix of the first digits of the claim names: the range is an
    /// aligned block of a power of ten (for backends without cheap
    /// `start_after`).
    DigitPrefix,
}

/// The next thing a worker should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Try to create the claim of this index.
    Claim(usize),
    /// List claims of indices `from..` (at most `limit` of them). With
    /// `digits`, list by the key prefix of the first `digits` digits of
    /// `from`'s claim name instead of `start_after`.
    List {
        /// The first index of the range.
        from: usize,
        /// At most this many claims.
        limit: usize,
        /// The key-prefix length, in digits, for [`ListMode::DigitPrefix`].
        digits: Option<usize>,
    },
    /// Read the block markers.
    ReadMarkers,
    /// Every element is known claimed: stop.
    Done,
}

/// A fixed-size bitset of indices known to be claimed.
#[derive(Debug, Clone)]
pub struct Known {
    words: Vec<u64>,
    len: usize,
    count: usize,
}

impl Known {
    /// Nothing known, for indices `0..len`.
    pub fn new(len: usize) -> Self {
        Known {
            words: vec![0; len.div_ceil(64)],
            len,
            count: 0,
        }
    }
    /// True when `i` is known claimed.
    pub fn get(&self, i: usize) -> bool {
        self.words[i / 64] >> (i % 64) & 1 == 1
    }
    /// Marks `i` claimed.
    pub fn set(&mut self, i: usize) {
        let w = &mut self.words[i / 64];
        let bit = 1u64 << (i % 64);
        if *w & bit == 0 {
            *w |= bit;
            self.count += 1;
        }
    }
    /// How many indices are known claimed.
    pub fn count(&self) -> usize {
        self.count
    }
    /// True when every index is known claimed.
    pub fn full(&self) -> bool {
        self.count == self.len
    }
    /// The first known index at or after `from` (no wrapping).
    pub fn next_known(&self, from: usize) -> Option<usize> {
        let mut wi = from / 64;
        let mut w = *self.words.get(wi)? & (u64::MAX << (from % 64));
        loop {
            if w != 0 {
                let j = wi * 64 + w.trailing_zeros() as usize;
                return (j < self.len).then_some(j);
            }
            wi += 1;
            w = *self.words.get(wi)?;
        }
    }

    /// The first unknown index at or after `from`, wrapping around.
    pub fn next_unknown(&self, from: usize) -> Option<usize> {
        if self.full() {
            return None;
        }
        let n = self.len;
        let mut i = from % n;
        for _ in 0..=self.words.len() * 64 {
            let wi = i / 64;
            let mask = !self.words[wi] & (u64::MAX << (i % 64));
            if mask != 0 {
                let j = wi * 64 + mask.trailing_zeros() as usize;
                if j < n {
                    return Some(j);
                }
            }
            i = (wi + 1) * 64;
            if i >= n {
                i = 0;
            }
        }
        None
    }
}

/// Claim listings by what sent the worker to list: the measure of where a
/// fleet's listings go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListReasons {
    /// A create lost to another worker's claim.
    pub after_collision: u64,
    /// The walk reached an index a listing had shown claimed (the end of
    /// the free run it jumped into), or the first walk came round.
    pub after_run_end: u64,
    /// The last listing showed nothing free: the worker is in the tail,
    /// looking for the last free indices or for proof there are none.
    pub in_tail: u64,
}

/// Why the worker's last run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Collision,
    RunEnd,
    EmptyPage,
}

/// The run a worker is walking: try `next`, stop before `end`.
#[derive(Debug, Clone, Copy)]
struct Run {
    next: usize,
    end: usize,
}

/// The smallest claims page a worker asks for.
const MIN_PAGE: usize = 32;

/// A worker's knowledge of a session's claims, and its next move.
#[derive(Debug)]
pub struct Planner {
    n: usize,
    width: usize,
    known: Known,
    run: Option<Run>,
    /// The last listing found nothing free: read the block markers first.
    tail: bool,
    markers_due: bool,
    /// Blocks known fully claimed (their marker exists or is being written).
    blocks_marked: Vec<bool>,
    /// Blocks found fully claimed and not yet handed out for publishing.
    to_publish: Vec<usize>,
    /// Claimed share of the index range covered by the last listing.
    density: f64,
    max_page: usize,
    mode: ListMode,
    rng: fastrand::Rng,
    ended: Ended,
    reasons: ListReasons,
}

impl Planner {
    /// A planner for `n` elements with claim names of `width` digits, list
    /// pages of at most `max_page`, seeded `seed`.
    pub fn new(n: usize, width: usize, max_page: usize, mode: ListMode, seed: u64) -> Self {
        Self::with_start(n, width, max_page, mode, seed, None)
    }

    /// As [`Planner::new`], with the first walk over `slice` (a shard's
    /// share: its start taken modulo `n`) instead of from a random index.
    /// The walk stops before the slice's end, where the next shard starts,
    /// instead of colliding with it; a slice that ends at `n` goes round to
    /// index 0 as any walk does.
    pub fn with_start(
        n: usize,
        width: usize,
        max_page: usize,
        mode: ListMode,
        seed: u64,
        slice: Option<std::ops::Range<usize>>,
    ) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let random = rng.usize(..n.max(1));
        let (start, end) = match slice {
            None => (random, n),
            Some(r) => {
                let s = r.start % n.max(1);
                (s, r.end.clamp(s, n))
            }
        };
        Planner {
            n,
            width,
            known: Known::new(n),
            run: Some(Run { next: start, end }),
            tail: false,
            markers_due: false,
            blocks_marked: vec![false; n.div_ceil(crate::layout::BLOCK)],
            to_publish: Vec::new(),
            density: 0.0,
            max_page: max_page.clamp(1, 5000),
            mode,
            rng,
            ended: Ended::RunEnd,
            reasons: ListReasons::default(),
        }
    }

    /// What is known.
    pub fn known(&self) -> &Known {
        &self.known
    }

    /// The listings asked for so far, by reason.
    pub fn list_reasons(&self) -> ListReasons {
        self.reasons
    }

    /// The next action.
    pub fn next_action(&mut self) -> Action {
        if let Some(i) = self.next_in_run() {
            return Action::Claim(i);
        }
        if self.known.full() {
            return Action::Done;
        }
        if self.markers_due {
            return Action::ReadMarkers;
        }
        // A page of L claims at density d covers about L(1-d)/d free
        // indices. Ask for enough to see a few dozen free ones: small pages
        // while gaps are wide (cheap to send and to parse), full pages in the
        // tail, where free indices are sparse.
        let d = self.density.min(0.999);
        let mut page =
            ((MIN_PAGE as f64 * d / (1.0 - d)).ceil() as usize).clamp(MIN_PAGE, self.max_page);
        let mut r = self
            .known
            .next_unknown(self.rng.usize(..self.n))
            .expect("not full");
        if self.tail && self.mode == ListMode::StartAfter {
            // In the tail (the last page showed nothing free): list from the
            // first unknown index of a block to the block's end, so that the
            // page proves the block full and its marker is published. An
            // unaligned page would leave two blocks half seen for the next
            // worker to list again (in the fleet simulation at 1,024
            // workers, aligned pages cut the tail's listings by 37% with
            // random starts and by 63% sharded).
            use crate::layout::BLOCK;
            let k = r / BLOCK;
            let end = ((k + 1) * BLOCK).min(self.n);
            r = self.known.next_unknown(k * BLOCK).unwrap_or(r).min(r);
            page = (end - r).clamp(1, self.max_page);
        }
        match self.ended {
            Ended::Collision => self.reasons.after_collision += 1,
            Ended::RunEnd => self.reasons.after_run_end += 1,
            Ended::EmptyPage => self.reasons.in_tail += 1,
        }
        match self.mode {
            ListMode::StartAfter => Action::List {
                from: r,
                limit: page,
                digits: None,
            },
            ListMode::DigitPrefix => {
                // The largest power of ten not above the page, at most the
                // whole width: list the aligned block that holds r.
                let mut k = 0;
                while k < self.width && 10usize.pow(k as u32 + 1) <= page {
                    k += 1;
                }
                let span = 10usize.pow(k as u32);
                Action::List {
                    from: r - r % span,
                    limit: span,
                    digits: Some(self.width - k),
                }
            }
        }
    }

    /// The create of claim `i` succeeded: walk on from it.
    pub fn claimed(&mut self, i: usize) {
        self.known.set(i);
        if (i + 1).is_multiple_of(crate::layout::BLOCK) || i + 1 == self.n {
            // The walk finished a block: if all of it is known claimed, it
            // is handed out for publishing (with the next claim).
            self.note_full_blocks(i, i + 1);
        }
        self.run = Some(match self.run {
            Some(r) => Run {
                next: i + 1,
                end: r.end,
            },
            None => Run {
                next: i + 1,
                end: self.n,
            },
        });
    }

    /// The create of claim `i` met another worker's claim.
    pub fn taken(&mut self, i: usize) {
        self.known.set(i);
        self.run = None;
        self.ended = Ended::Collision;
    }

    /// A listing of the range starting at `from` found the claims `found`
    /// (indices), and covered the range up to `hi` (exclusive): every index
    /// in `from..hi` not in `found` was free when listed.
    pub fn listed(&mut self, from: usize, found: &[usize], hi: usize) {
        for &i in found {
            if i < self.n {
                self.known.set(i);
            }
        }
        let hi = hi.min(self.n);
        if hi > from {
            let seen = found.iter().filter(|&&i| i >= from && i < hi).count();
            self.density = seen as f64 / (hi - from) as f64;
        }
        let mut best: Vec<(usize, usize)> = Vec::new();
        let mut best_len = 0;
        let mut i = from;
        while i < hi {
            if self.known.get(i) {
                i += 1;
                continue;
            }
            let a = i;
            while i < hi && !self.known.get(i) {
                i += 1;
            }
            let len = i - a;
            if len > best_len {
                best_len = len;
                best.clear();
            }
            if len == best_len {
                best.push((a, i));
            }
        }
        self.note_full_blocks(from, hi);
        if best.is_empty() {
            self.tail = true;
            self.markers_due = true;
            self.run = None;
            self.ended = Ended::EmptyPage;
            return;
        }
        self.tail = false;
        let (a, b) = best[self.rng.usize(..best.len())];
        let len = b - a;
        let target = if len >= 3 {
            a + len / 2
        } else {
            a + self.rng.usize(..len)
        };
        // A run that reaches the edge of what was listed (the end of a
        // digit-prefix span) ends where nothing is known: walk on past it,
        // as the first walk does, instead of listing again there. (In the
        // fleet simulation on Azure's limits this took random starts from
        // 1.27 to 1.38 requests per element down to 1.10 to 1.18.)
        let end = if b == hi && hi < self.n { self.n } else { b };
        self.run = Some(Run { next: target, end });
    }

    /// The block markers read: these blocks are fully claimed.
    pub fn markers(&mut self, blocks: &[usize]) {
        self.markers_due = false;
        for &k in blocks {
            if k < self.blocks_marked.len() && !self.blocks_marked[k] {
                self.blocks_marked[k] = true;
                let end = ((k + 1) * crate::layout::BLOCK).min(self.n);
                for i in k * crate::layout::BLOCK..end {
                    self.known.set(i);
                }
            }
        }
    }

    /// True while the last listing found nothing free.
    pub fn in_tail(&self) -> bool {
        self.tail
    }

    /// Blocks this planner found fully claimed and nobody was told of yet.
    pub fn take_full_blocks(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.to_publish)
    }

    /// Every block not yet known to have its marker, that is fully known
    /// claimed (for the worker that finds the session exhausted).
    pub fn all_unmarked_full_blocks(&mut self) -> Vec<usize> {
        self.note_full_blocks(0, self.n);
        self.take_full_blocks()
    }

    fn note_full_blocks(&mut self, lo: usize, hi: usize) {
        use crate::layout::BLOCK;
        if lo >= hi {
            return;
        }
        for k in lo / BLOCK..=(hi - 1) / BLOCK {
            if self.blocks_marked[k] {
                continue;
            }
            let end = ((k + 1) * BLOCK).min(self.n);
            if (k * BLOCK..end).all(|i| self.known.get(i)) {
                self.blocks_marked[k] = true;
                self.to_publish.push(k);
            }
        }
    }

    fn next_in_run(&mut self) -> Option<usize> {
        let r = self.run?;
        let n = self.n;
        let (mut i, mut end) = (r.next, r.end.min(n));
        if i >= n && end == n {
            // The indices form a circle: a run that reaches the last index
            // goes on at index 0, up to the first index known to be claimed.
            // Without this nobody walks towards index 0, and the run before
            // the first start is left until the very end, when every
            // worker lists its way to it at once.
            i = 0;
            end = self.known.next_known(0).unwrap_or(n);
        }
        while i < end {
            if !self.known.get(i) {
                self.run = Some(Run { next: i, end });
                return Some(i);
            }
            i += 1;
        }
        self.run = None;
        self.ended = Ended::RunEnd;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn known(len: usize, set: &[usize]) -> Known {
        let mut k = Known::new(len);
        for &i in set {
            k.set(i);
        }
        k
    }

    #[test]
    fn next_known_does_not_wrap() {
        let k = known(200, &[3, 64, 130]);
        assert_eq!(k.next_known(0), Some(3));
        assert_eq!(k.next_known(3), Some(3));
        assert_eq!(k.next_known(4), Some(64));
        assert_eq!(k.next_known(65), Some(130));
        assert_eq!(k.next_known(131), None);
        assert_eq!(k.next_known(500), None);
        assert_eq!(known(70, &[]).next_known(0), None);
    }

    #[test]
    fn next_unknown_wraps() {
        let k = known(130, &(5..130).collect::<Vec<_>>());
        assert_eq!(k.next_unknown(100), Some(0));
        assert_eq!(k.next_unknown(3), Some(3));
        assert!(known(3, &[0, 1, 2]).next_unknown(0).is_none());
    }

    /// A simulated session: a set of claimed indices that several planners
    /// share, with listings answered from it.
    struct Sim {
        claimed: BTreeSet<usize>,
        n: usize,
    }

    impl Sim {
        fn list(
            &self,
            from: usize,
            limit: usize,
            digits: Option<usize>,
            width: usize,
        ) -> (Vec<usize>, usize) {
            let (lo, hi_range) = match digits {
                Some(d) => {
                    let span = 10usize.pow((width - d) as u32);
                    (from, (from + span).min(self.n))
                }
                None => (from, self.n),
            };
            let found: Vec<usize> = self
                .claimed
                .range(lo..hi_range)
                .take(limit)
                .copied()
                .collect();
            let hi = if found.len() == limit {
                found.last().unwrap() + 1
            } else {
                hi_range
            };
            (found, hi)
        }

        /// Runs planners round-robin until all are done; returns the
        /// requests each made and what each claimed.
        fn run(&mut self, planners: &mut [Planner], width: usize) -> (usize, Vec<Vec<usize>>) {
            let mut got = vec![Vec::new(); planners.len()];
            let mut requests = 0;
            let mut active: Vec<bool> = vec![true; planners.len()];
            while active.iter().any(|a| *a) {
                for (w, p) in planners.iter_mut().enumerate() {
                    if !active[w] {
                        continue;
                    }
                    match p.next_action() {
                        Action::Claim(i) => {
                            requests += 1;
                            if self.claimed.insert(i) {
                                p.claimed(i);
                                got[w].push(i);
                            } else {
                                p.taken(i);
                            }
                        }
                        Action::List {
                            from,
                            limit,
                            digits,
                        } => {
                            requests += 1;
                            let (found, hi) = self.list(from, limit, digits, width);
                            p.listed(from, &found, hi);
                        }
                        Action::ReadMarkers => {
                            requests += 1;
                            p.markers(&[]);
                        }
                        Action::Done => active[w] = false,
                    }
                }
            }
            (requests, got)
        }
    }

    fn exactly_once(got: &[Vec<usize>], n: usize) {
        let mut all: Vec<usize> = got.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
    }

    /// Runs planners sharing one simulated session of `n` elements to the
    /// end; checks that each index went to exactly one of them and that
    /// every planner ends knowing everything claimed. Returns the requests.
    fn share(planners: &mut [Planner], n: usize, width: usize) -> usize {
        let mut sim = Sim {
            claimed: BTreeSet::new(),
            n,
        };
        let (requests, got) = sim.run(planners, width);
        exactly_once(&got, n);
        assert!(planners.iter().all(|p| p.known().full()));
        requests
    }

    #[test]
    fn planners_sharing_a_session_claim_everything_once() {
        for (mode, workers, n) in [
            (ListMode::StartAfter, 1, 500),
            (ListMode::StartAfter, 16, 5000),
            (ListMode::DigitPrefix, 16, 5000),
            (ListMode::DigitPrefix, 7, 123),
        ] {
            let width = crate::layout::claim_width(n);
            let mut planners: Vec<Planner> = (0..workers)
                .map(|w| Planner::new(n, width, 1000, mode, w as u64 + 1))
                .collect();
            let requests = share(&mut planners, n, width);
            assert!(requests >= n, "{mode:?} {workers}: {requests} requests");
        }
    }

    #[test]
    fn sharded_starts_claim_everything_once_with_fewer_requests() {
        let n = 8000;
        let width = crate::layout::claim_width(n);
        let run = |starts: &[Option<std::ops::Range<usize>>]| {
            let mut planners: Vec<Planner> = starts
                .iter()
                .enumerate()
                .map(|(w, s)| {
                    Planner::with_start(
                        n,
                        width,
                        1000,
                        ListMode::StartAfter,
                        w as u64 + 11,
                        s.clone(),
                    )
                })
                .collect();
            share(&mut planners, n, width)
        };
        let k = 16;
        let random = run(&vec![None; k]);
        let sharded = run(&(0..k)
            .map(|w| Some(w * n / k..(w + 1) * n / k))
            .collect::<Vec<_>>());
        // Round-robin planners move in lock step: evenly spread starts
        // meet only at the slices' ends.
        assert!(
            sharded < random,
            "sharded {sharded} requests, random {random}"
        );
        // This harness publishes no block markers: every planner lists its
        // way through the whole range at the end (about n / 1000 pages each).
        assert!(sharded <= n + 32 * k, "sharded: {sharded} requests");
        // Hints are only hints: the same start for everyone, starts past
        // the end, and a mix with random starts still claim each index once.
        run(&vec![Some(0..n / k); k]);
        run(&vec![Some(5..5); k]);
        run(&(0..k)
            .map(|w| Some(n + w * 7..n + w * 7 + 10))
            .collect::<Vec<_>>());
        run(&(0..k)
            .map(|w| (w % 2 == 0).then_some(w * n / k..(w + 1) * n / k))
            .collect::<Vec<_>>());
    }

    #[test]
    fn a_block_the_walk_fills_alone_is_published() {
        let mut p = Planner::with_start(2500, 4, 1000, ListMode::StartAfter, 5, Some(1000..2500));
        for i in 1000..2000 {
            assert_eq!(p.next_action(), Action::Claim(i));
            p.claimed(i);
            if i < 1999 {
                assert!(p.take_full_blocks().is_empty(), "block 1 not full at {i}");
            }
        }
        assert_eq!(p.take_full_blocks(), [1]);
        // The short last block counts too.
        for i in 2000..2500 {
            assert_eq!(p.next_action(), Action::Claim(i));
            p.claimed(i);
        }
        assert_eq!(p.take_full_blocks(), [2]);
        // Block 0 was never walked: nothing to publish, and the walk wraps.
        assert_eq!(p.next_action(), Action::Claim(0));
    }

    #[test]
    fn a_run_reaching_the_end_of_a_listed_span_walks_on() {
        let mut p = Planner::new(1000, 3, 1000, ListMode::DigitPrefix, 4);
        p.taken(3);
        // The span 100..110 holds claims 100..105: the free run 105..110
        // touches the span's end, past which nothing is known.
        let found: Vec<usize> = (100..105).collect();
        p.listed(100, &found, 110);
        let mut walked = Vec::new();
        while let Action::Claim(i) = p.next_action() {
            walked.push(i);
            p.claimed(i);
            if walked.len() == 6 {
                break;
            }
        }
        assert_eq!(walked, [107, 108, 109, 110, 111, 112]);
        // A run ending at a listed claim stops there.
        let mut q = Planner::new(1000, 3, 1000, ListMode::DigitPrefix, 4);
        q.taken(3);
        q.listed(100, &[100, 101, 109], 110);
        let mut walked = Vec::new();
        while let Action::Claim(i) = q.next_action() {
            walked.push(i);
            q.claimed(i);
        }
        // The run 102..109 is entered in its middle.
        assert_eq!(walked, [105, 106, 107, 108]);
    }

    #[test]
    fn a_digit_prefix_listing_is_an_aligned_power_of_ten() {
        let mut p = Planner::new(100_000, 5, 1000, ListMode::DigitPrefix, 3);
        p.taken(77_777);
        match p.next_action() {
            Action::List {
                from,
                limit,
                digits,
            } => {
                assert_eq!(limit, 10usize.pow((5 - digits.unwrap()) as u32));
                assert_eq!(from % limit, 0);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_page_without_free_indices_sends_the_worker_to_the_markers() {
        let mut p = Planner::new(2000, 4, 1000, ListMode::StartAfter, 9);
        p.taken(5);
        assert!(matches!(p.next_action(), Action::List { .. }));
        // A listing from 1000 finds everything to the end claimed.
        let found: Vec<usize> = (1000..2000).collect();
        p.listed(1000, &found, 2000);
        assert!(p.in_tail());
        assert_eq!(p.take_full_blocks(), [1], "block 1 is to be published");
        assert_eq!(p.next_action(), Action::ReadMarkers);
        // Others found block 0 full: then everything is known.
        p.markers(&[0]);
        assert!(p.known().full());
        assert_eq!(p.next_action(), Action::Done);
        assert!(
            p.take_full_blocks().is_empty(),
            "block 0 has its marker already"
        );
    }
}
