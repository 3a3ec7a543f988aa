"""The one parsing layer: whole numbers, ids, money, dates and text, read the same way by every view and command."""
from datetime import date, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from portal.domain import parsing
from portal.domain.parsing import InvalidValue


# ---------------------------------------------------------------- whole numbers and ids

@pytest.mark.parametrize("text, expected", [("7", 7), (" 31 ", 31), ("-4", -4), ("007", 7), (12, 12)])
def test_whole_numbers_are_ascii_digits(text, expected):
    assert parsing.whole_number(text) == expected


@pytest.mark.parametrize("text", ["", " ", "²", "٣", "１", "3²", "1_000", "+5", "5.0", "1e3", "0x10", "½", "--1",
                                  "1 2", "9" * 41, None])
def test_anything_else_is_not_a_whole_number(text):
    with pytest.raises(InvalidValue) as refused:
        parsing.whole_number(text)
    assert refused.value.message == "Enter a whole number."


def test_a_range_is_inclusive_and_named_in_the_message():
    assert parsing.whole_number("1", 1, 31) == 1 and parsing.whole_number("31", 1, 31) == 31
    for text in ("0", "32", "-1", "99999999999999999999"):
        with pytest.raises(InvalidValue, match="from 1 to 31"):
            parsing.whole_number(text, 1, 31)
    with pytest.raises(InvalidValue, match="^Pick a day.$"):
        parsing.whole_number("x", 1, 31, "Pick a day.")


@pytest.mark.parametrize("text, expected", [
    ("1", 1), ("2147483647", parsing.ID_MAX), (42, 42), ("0", None), ("-1", None), ("2147483648", None),
    ("9223372036854775808", None), ("²", None), ("٣", None), ("", None), (None, None), ("1.0", None),
])
def test_ids_fit_the_integer_columns_or_are_none(text, expected):
    assert parsing.record_id(text) == expected


@given(st.text(max_size=30))
@example("²")
@example("9" * 5000)
def test_any_text_is_an_id_in_range_or_none(text):
    found = parsing.record_id(text)
    assert found is None or (1 <= found <= parsing.ID_MAX and text.strip().lstrip("0") == str(found))


# ---------------------------------------------------------------- money

@pytest.mark.parametrize("text, cents", [
    ("5", 500), ("12.50", 1250), ("12.5", 1250), ("0.05", 5), ("$1,250.5", 125050), (" $ 7 ", 700), ("0", 0),
    ("1,000,000", 100000000),
])
def test_money_is_dollars_with_at_most_two_decimals(text, cents):
    assert parsing.money_cents(text, 10**12) == cents


@pytest.mark.parametrize("text", ["1e1000000", "1e3", "-1e1000000", "1e-1000000", "5.001", "NaN", "Infinity",
                                  "five", "", "$", ".5", "5.", "1,,000", "1,000,", "٣", "²", "-5", "--5", "9" * 5000])
def test_anything_else_is_not_money(text):
    with pytest.raises(InvalidValue, match="at most two decimals"):
        parsing.money_cents(text, 10**12)


def test_money_has_a_maximum_and_negatives_only_when_asked():
    assert parsing.money_cents("100", 10000) == 10000
    with pytest.raises(InvalidValue, match=r"at most \$100.00"):
        parsing.money_cents("100.01", 10000)
    assert parsing.money_cents("-$5.25", 10000, allow_negative=True) == -525
    with pytest.raises(InvalidValue, match=r"at most \$100.00"):
        parsing.money_cents("-100.01", 10000, allow_negative=True)


@given(st.integers(min_value=0, max_value=10**13))
def test_money_reads_back_what_the_portal_writes(cents):
    assert parsing.money_cents(f"${cents // 100:,}.{cents % 100:02d}", 10**13) == cents


@given(st.text(max_size=40))
@example("1e1000000")
def test_any_text_is_an_amount_within_the_maximum_or_refused(text):
    try:
        cents = parsing.money_cents(text, 10**11, allow_negative=True)
    except InvalidValue as exc:
        assert exc.message
    else:
        assert -10**11 <= cents <= 10**11


# ---------------------------------------------------------------- dates

def test_dates_are_iso_with_a_clear_message():
    assert parsing.iso_date(" 2026-11-22 ") == date(2026, 11, 22)
    for text in ("2026-11-31", "22/11/2026", "20261122", "2026-W47-7", "２０２６-１１-２２", "1899-12-31",
                 "2201-01-01", "2026-11-22T10:00", "", "yesterday"):
        with pytest.raises(InvalidValue, match="YYYY-MM-DD"):
            parsing.iso_date(text)


def test_date_times_are_iso_and_end_in_utc():
    assert parsing.iso_datetime("2026-11-22") == datetime(2026, 11, 22)
    assert parsing.iso_datetime("2026-11-22T08:30") == datetime(2026, 11, 22, 8, 30)
    assert parsing.iso_datetime("2026-11-22 08:30:15.5") == datetime(2026, 11, 22, 8, 30, 15, 500000)
    assert parsing.iso_datetime("2026-11-22T08:30+02:00") == datetime(2026, 11, 22, 6, 30)
    assert parsing.iso_datetime("2026-11-22T08:30Z") == datetime(2026, 11, 22, 8, 30)
    for text in ("2026-11-22T25:00", "2026-11-22T08", "9999-12-31T23:59", "0001-01-01", "2026-11-22T08:30 UTC",
                 "١٢", "tomorrow"):
        with pytest.raises(InvalidValue, match="YYYY-MM-DD"):
            parsing.iso_datetime(text)


# ---------------------------------------------------------------- text

@pytest.mark.parametrize("char", ["\x00", "\ud800", "\udcff", "\udfff", "\ufdd0", "\ufdef", "\ufffe", "\uffff",
                                  "\U0001fffe", "\U0010ffff"])
def test_text_that_no_field_can_hold_is_refused_by_code_point(char):
    with pytest.raises(InvalidValue) as refused:
        parsing.clean_text(f"Blue {char} Harbor", "The note")
    assert refused.value.message == (f"The note contains a character that can't be used (U+{ord(char):04X}). "
                                     "Remove it and try again.")
    assert char not in refused.value.message


@pytest.mark.parametrize("text", ["Éclair House", "東京", "emoji 🍣", "\ud7ff", "\ue000", "\ufffd", "tab\there"])
def test_other_text_is_kept(text):
    assert parsing.clean_text(f" {text} ") == text and parsing.text_problem(text) is None
