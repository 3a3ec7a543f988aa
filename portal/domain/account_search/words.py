"""The list's search box: what staff type, as SQL that finds accounts by any part of their name, email or number.

Every whitespace-separated word must occur, in any order, somewhere in the account's name, email or number
("bay bak" finds "Maple Bay Bakery", "2629" finds A0002629, "hello12@" an email). Capitals of A-Z don't matter;
other letters match as typed (SQLite's lower() and LIKE fold ASCII only, and so does PostgreSQL's in the C
locale the portal's clusters use). Every character is literal: `%`, `_`, quotes, `*`, NEAR, AND, `:`, `^`.

How it stays fast at a million accounts:
- a word with a run of 3+ ASCII letters or digits is *indexed*: its trigrams are looked up in SQLite's FTS5
  table `accounts_search` (tokenize='trigram', migration 0008) or PostgreSQL's GIN trigram index on
  SEARCH_TEXT; every match is then checked exactly with LIKE on the row;
- other words (1-2 characters, or punctuation only, or letters outside ASCII) have no trigram to look up:
  they are checked with LIKE on the rows the indexed words found, or the list walked;
- a search of such words only is a case-insensitive *prefix* of the name, email or number (the btree indexes
  on lower(name), lower(email) and number serve it): short words would match almost everything anyway.
"""
import re
from dataclasses import dataclass

from sqlalchemy import and_, column, func, literal, literal_column, select, table

from portal.models import Account

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_RUN = re.compile(r"[a-z0-9]{3,}")
# Trigrams looked up: each term costs a walk of its doclist, and a few already narrow to a handful of candidates
# (10 terms took 36 ms where 3 took 6 ms at 1M accounts); LIKE then checks each candidate exactly.
TRIGRAMS_PER_WORD = 3  # the first, middle and last
TRIGRAMS_MAX = 6  # over all words: a word of several gets fewer each (its first and last)
FTS = table("accounts_search", column("rowid"), column("accounts_search"))


@dataclass(frozen=True)
class Words:
    """A search split into words: `indexed` ones have trigrams to look up, `short` ones are only checked."""

    indexed: tuple
    short: tuple

    @property
    def all(self):
        return self.indexed + self.short


def split_words(q):
    """Return the Words of a search (each distinct word once, in the order typed)."""
    words = tuple(dict.fromkeys(q.split()))
    indexed = tuple(w for w in words if _RUN.search(w.translate(_ASCII_LOWER)))
    return Words(indexed, tuple(w for w in words if w not in indexed))


def search_text(accounts=Account):
    """The text a word is looked for in: lower(name || ' ' || email || ' ' || number).

    Written exactly as the PostgreSQL index's expression (with literals, not parameters), so the planner
    matches it; a word has no whitespace, so it never spans two fields.
    """
    return func.lower(_concatenated(accounts))


def _concatenated(accounts):
    space = literal_column("' '")
    return accounts.name.op("||")(space).op("||")(accounts.email).op("||")(space).op("||")(accounts.number)


def _like_pattern(word):
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(literal(f"%{escaped}%"))  # folded by the database, as the text it is compared with


def contains_all(words, accounts=Account, indexed=True):
    """The exact test: every word occurs in the account's search text (LIKE, wildcards escaped).

    indexed=False writes the text so that PostgreSQL's trigram index does not match it (`|| ''` at the end,
    the same value): for rows already read by their ids (candidates, a status's rows), where the planner would otherwise
    AND in the index's postings, read in full (15 ms for a common word at a million accounts), to test a few
    thousand rows at most.
    """
    text = search_text(accounts) if indexed else func.lower(_concatenated(accounts).op("||")(literal_column("''")))
    return and_(*(text.like(_like_pattern(w), escape="\\") for w in words))


def _trigrams(word, most):
    """Up to `most` trigrams of the word's ASCII letter-and-digit runs, spread from its first to its last."""
    grams = [run[i:i + 3] for run in _RUN.findall(word.translate(_ASCII_LOWER)) for i in range(len(run) - 2)]
    grams = list(dict.fromkeys(grams))
    if len(grams) <= most:
        return grams
    if most == 1:
        return grams[-1:]
    step = (len(grams) - 1) / (most - 1)
    return [grams[round(i * step)] for i in range(most)]


def fts_query(words):
    """The FTS5 MATCH expression: the words' trigrams, each quoted (only a-z and 0-9 inside), all required.

    Nothing typed reaches FTS5's syntax: quotes, `*`, NEAR, AND/OR/NOT, `:`, `^` and parentheses are never
    in a trigram taken from letter-and-digit runs. The trigrams say where to look; LIKE decides.
    """
    most = max(1, min(TRIGRAMS_PER_WORD, TRIGRAMS_MAX // len(words.indexed)))
    return " ".join(f'"{g}"' for w in words.indexed for g in dict.fromkeys(_trigrams(w, most)))


def fts_ids(words, limit=None):
    """SELECT the rowids of accounts_search holding every trigram of the indexed words (SQLite)."""
    stmt = select(FTS.c.rowid).where(FTS.c.accounts_search.match(fts_query(words)))
    return stmt.limit(limit) if limit is not None else stmt


def matching(words, dialect, walking=False):
    """The search's SQL condition over accounts.

    Args:
        words: Words with at least one indexed word.
        dialect: "sqlite" or "postgresql".
        walking: the condition is tested on rows a walk of the sort's index reads anyway (no index lookup:
            on SQLite the FTS5 set would be built in full first, for every window); "ids": on rows read by
            their ids (PostgreSQL's GIN index written out of the condition too, see contains_all).
    """
    if dialect == "sqlite":
        exact = contains_all(words.all)
        return exact if walking else and_(Account.id.in_(fts_ids(words)), exact)
    # PostgreSQL: the GIN index serves these LIKEs wherever the planner wants it, but not on rows read by id
    return contains_all(words.all, indexed=walking != "ids")


def candidates(words, dialect, most):
    """SELECT the ids of at most `most` accounts that may match (the trigram index alone), in no set order.

    The one index lookup of a request: more than `most - 1` back means the search is common and the list
    walks its order instead (each row tested with contains_all), or the counts stop there.
    SQLite reads them from FTS5 (only trigrams: LIKE decides later); PostgreSQL from the GIN index, whose
    LIKEs are already exact for the indexed words.
    """
    if dialect == "sqlite":
        return fts_ids(words, most)
    return select(Account.id).where(contains_all(words.indexed)).limit(most)
