//! The seeded generator of the property tests, and how they read their case count and seed.

/// xorshift64*, reproducible from the printed seed. The state must not be 0.
pub struct Random(pub u64);

impl Random {
    /// A number in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % bound.max(1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One of `items`, which must not be empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A seed from the clock, never 0.
pub fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1
}

/// The number of cases (`cases_var`, else `default`) and the first seed (`seed_var`, else the
/// clock's) a property test runs; a value that does not parse fails the test, rather than
/// silently running something else than asked.
pub fn cases_and_seed(cases_var: &str, default: u64, seed_var: &str) -> (u64, u64) {
    let read = |var: &str| {
        std::env::var(var)
            .ok()
            .map(|n| n.parse().unwrap_or_else(|_| panic!("{var}={n} is not a number")))
    };
    (
        read(cases_var).unwrap_or(default),
        read(seed_var).unwrap_or_else(clock_seed),
    )
}
