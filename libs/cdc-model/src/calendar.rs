//! Proleptic Gregorian calendar arithmetic (days since 1970-01-01 to and from year, month,
//! day), written out so every service computes dates the same way without a date library.

/// Days from 1970-01-01 to `year-month-day` (negative before 1970).
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = month as i32;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day as i32 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `(year, month, day)` of the day `days` after 1970-01-01.
pub fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i32::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of SQL Server's first date, 0001-01-01.
pub const FIRST_SQL_SERVER_DAY: i32 = -719_162;
/// Days since 1970-01-01 of SQL Server's last date, 9999-12-31.
pub const LAST_SQL_SERVER_DAY: i32 = 2_932_896;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_anchors() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1, 1, 1), FIRST_SQL_SERVER_DAY);
        assert_eq!(days_from_civil(9999, 12, 31), LAST_SQL_SERVER_DAY);
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn every_sql_server_day_round_trips_and_advances_by_one_calendar_day() {
        let mut previous = civil_from_days(FIRST_SQL_SERVER_DAY - 1);
        for days in FIRST_SQL_SERVER_DAY..=LAST_SQL_SERVER_DAY {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            let follows = (y, m, d) > previous && (d == previous.2 + 1 || d == 1);
            assert!(follows, "{previous:?} -> {:?}", (y, m, d));
            previous = (y, m, d);
        }
        assert_eq!(previous, (9999, 12, 31));
    }
}
