//! Which days to fetch: the days a run needs, less those the output already holds, plus the
//! last days again for late events; grouped into runs of consecutive days, one query each.

use std::collections::BTreeSet;

use chrono::NaiveDate;

/// Microseconds in a day.
pub const DAY_MICROS: i64 = 86_400_000_000;

/// A UTC day, as days since 1970-01-01.
pub type Day = i64;

/// The day holding the instant `micros`.
pub fn day_of(micros: i64) -> Day {
    micros.div_euclid(DAY_MICROS)
}

/// `2025-11-14`.
pub fn day_name(day: Day) -> String {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch is a date");
    epoch
        .checked_add_signed(chrono::TimeDelta::days(day))
        .map_or_else(|| format!("day {day}"), |d| d.format("%Y-%m-%d").to_string())
}

/// The day a partition directory names: `date=2025-11-14` gives its day.
pub fn parse_partition(segment: &str) -> Option<Day> {
    let date = NaiveDate::parse_from_str(segment.strip_prefix("date=")?, "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((date - epoch).num_days())
}

/// What a run does with each day it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Every day from the lookback's first to END's, in order.
    pub needed: Vec<Day>,
    /// The needed days the output holds and that are not refreshed.
    pub kept: Vec<Day>,
    /// The days to query, as runs of consecutive days: `[first, last]` each.
    pub ranges: Vec<(Day, Day)>,
}

impl Plan {
    /// Days in [`first`, `last`], less `present` unless among the last `refresh` days.
    pub fn new(first: Day, last: Day, present: &BTreeSet<Day>, refresh: u32) -> Plan {
        let needed: Vec<Day> = (first..=last).collect();
        let refreshed_from = last - i64::from(refresh) + 1;
        let kept: Vec<Day> = needed
            .iter()
            .copied()
            .filter(|d| present.contains(d) && *d < refreshed_from)
            .collect();
        let mut ranges: Vec<(Day, Day)> = Vec::new();
        for &day in needed.iter().filter(|d| !kept.contains(d)) {
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == day => *end = day,
                _ => ranges.push((day, day)),
            }
        }
        Plan { needed, kept, ranges }
    }

    /// The days to fetch, in order.
    pub fn fetched(&self) -> Vec<Day> {
        self.ranges.iter().flat_map(|&(a, b)| a..=b).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(v: &[Day]) -> BTreeSet<Day> {
        v.iter().copied().collect()
    }

    #[test]
    fn a_first_run_fetches_every_day_in_one_query() {
        let plan = Plan::new(10, 40, &days(&[]), 1);
        assert_eq!(plan.needed.len(), 31);
        assert!(plan.kept.is_empty());
        assert_eq!(plan.ranges, vec![(10, 40)]);
    }

    #[test]
    fn a_later_run_fetches_the_new_day_and_the_refreshed_ones() {
        let present = days(&(10..=40).collect::<Vec<_>>());
        assert_eq!(Plan::new(11, 41, &present, 1).ranges, vec![(41, 41)]);
        assert_eq!(Plan::new(11, 41, &present, 2).ranges, vec![(40, 41)]);
        assert_eq!(Plan::new(11, 41, &present, 0).ranges, vec![(41, 41)]);
        // a rerun of a day already there: only the refreshed days
        assert_eq!(Plan::new(10, 40, &present, 1).ranges, vec![(40, 40)]);
        assert_eq!(Plan::new(10, 40, &present, 0).ranges, vec![]);
        assert_eq!(Plan::new(10, 40, &present, 0).kept.len(), 31);
    }

    #[test]
    fn gaps_become_one_query_each() {
        let present = days(&[10, 11, 14, 15, 16, 19]);
        let plan = Plan::new(10, 20, &present, 1);
        assert_eq!(plan.ranges, vec![(12, 13), (17, 18), (20, 20)]);
        assert_eq!(plan.kept, vec![10, 11, 14, 15, 16, 19]);
        assert_eq!(plan.fetched(), vec![12, 13, 17, 18, 20]);
    }

    #[test]
    fn days_and_partitions_name_each_other() {
        let day = day_of(1_763_078_400_000_000); // 2025-11-14T00:00:00Z
        assert_eq!(day_name(day), "2025-11-14");
        assert_eq!(parse_partition("date=2025-11-14"), Some(day));
        assert_eq!(day_of(1_763_078_400_000_000 - 1), day - 1);
        assert_eq!(day_of(-1), -1);
        assert_eq!(parse_partition("date=2025-13-01"), None);
        assert_eq!(parse_partition("day=2025-11-14"), None);
    }
}
