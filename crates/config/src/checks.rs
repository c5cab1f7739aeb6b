//! Field validators (Fast-LLM's `valid=check_field(Assert.…)`), used as `#[field(check = …)]`.
//!
//! `None` passes every check, as with Fast-LLM's `skip_valid_if_none`.

/// A number a check can compare.
pub trait Checked {
    /// The value, or `None` to skip the check.
    fn number(&self) -> Option<f64>;
}

impl Checked for i64 {
    fn number(&self) -> Option<f64> {
        Some(*self as f64)
    }
}

impl Checked for f64 {
    fn number(&self) -> Option<f64> {
        Some(*self)
    }
}

impl<T: Checked> Checked for Option<T> {
    fn number(&self) -> Option<f64> {
        self.as_ref().and_then(Checked::number)
    }
}

fn show(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:?}")
    }
}

/// `value` must be `rule` (as the message says it), which `holds` decides (NaN holds no rule).
fn must<T: Checked>(value: &T, rule: &str, holds: impl Fn(f64) -> bool) -> Result<(), String> {
    match value.number() {
        Some(v) if !holds(v) => Err(format!("must be {rule}, got {}", show(v))),
        _ => Ok(()),
    }
}

/// `> 0`.
pub fn positive<T: Checked>(value: &T) -> Result<(), String> {
    must(value, "> 0", |v| v > 0.0)
}

/// `>= 0`.
pub fn non_negative<T: Checked>(value: &T) -> Result<(), String> {
    must(value, ">= 0", |v| v >= 0.0)
}

/// The most blocks a block sequence may have: a documented limit of this converter (Fast-LLM has
/// none), far above any published model (a few hundred blocks), so that a block count from an
/// input file cannot make a conversion allocate per block without bound.
pub const MAX_BLOCKS: i64 = 1 << 16;

/// `0 <= n <= MAX_BLOCKS` (block sequences' `num_blocks`).
pub fn block_count<T: Checked>(value: &T) -> Result<(), String> {
    non_negative(value)?;
    must(
        value,
        &format!("at most {MAX_BLOCKS} (a limit of this converter; no published model comes close)"),
        |v| v <= MAX_BLOCKS as f64,
    )
}

/// `> 1` (MoE `experts`).
pub fn greater_than_one<T: Checked>(value: &T) -> Result<(), String> {
    must(value, "> 1", |v| v > 1.0)
}

/// In `[0, 1]`.
pub fn unit_interval<T: Checked>(value: &T) -> Result<(), String> {
    must(value, "in [0, 1]", |v| (0.0..=1.0).contains(&v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(1.0, true, true, false, true)]
    #[case(0.0, false, true, false, true)]
    #[case(-1.0, false, false, false, false)]
    #[case(2.0, true, true, true, false)]
    #[case(f64::NAN, false, false, false, false)]
    fn checks(#[case] v: f64, #[case] pos: bool, #[case] nonneg: bool, #[case] gt1: bool, #[case] unit: bool) {
        assert_eq!(positive(&v).is_ok(), pos);
        assert_eq!(non_negative(&v).is_ok(), nonneg);
        assert_eq!(greater_than_one(&v).is_ok(), gt1);
        assert_eq!(unit_interval(&v).is_ok(), unit);
    }

    #[rstest]
    #[case(positive(&0i64), "must be > 0, got 0")]
    #[case(non_negative(&-1.5f64), "must be >= 0, got -1.5")]
    #[case(greater_than_one(&f64::NAN), "must be > 1, got NaN")]
    #[case(unit_interval(&2i64), "must be in [0, 1], got 2")]
    #[case(block_count(&-1i64), "must be >= 0, got -1")]
    #[case(
        block_count(&(MAX_BLOCKS + 1)),
        "must be at most 65536 (a limit of this converter; no published model comes close), got 65537"
    )]
    fn a_failed_check_says_its_rule_and_the_value(#[case] checked: Result<(), String>, #[case] message: &str) {
        assert_eq!(checked.unwrap_err(), message);
    }

    #[test]
    fn block_counts_up_to_the_limit_pass() {
        assert!(block_count(&MAX_BLOCKS).is_ok() && block_count(&0i64).is_ok());
    }

    #[test]
    fn none_skips() {
        assert!(positive(&None::<i64>).is_ok());
        assert!(positive(&Some(0i64)).is_err());
    }
}
