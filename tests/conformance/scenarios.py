"""scenarios.py — the adapter conformance scenarios, in network-neutral
terms (the grammar is in runner.py's docstring; the actors' kinds in
driver.py). Every driver runs every scenario; a scenario passes on a host
when the host shows its users what the engine decided, to the right people,
with the right hints, and nothing else.

Rules for authors: one shop serves the whole run, so each scenario makes its
own items (its skus end with the scenario's number; runner.check_skus
refuses a sku made by two scenarios); accounts and rooms are fresh per
scenario. A first purchase always asks for consent (BUY, then CONFIRM).

NEGATIVE lists scenarios with one deliberately wrong expectation, at step
`fails_at` (1-based): each must fail exactly there, on every driver, which
shows that each kind of expectation can fail (a check that accepts anything
at its deadline is a defect)."""

# A host with the creator role (selling needs it) and a room it hosts.
def _creator(host="H", room="R"):
    return ["A says `TALLY ROLE {%s} creator`" % host,
            "A is told OK /^{%s} is now a creator\\.$/" % host,
            "%s joins %s" % (host, room)]


def _grant(who, amount):
    return ["A says `TALLY GRANT {%s} %s`" % (who, amount),
            "A is told OK /^Granted %s\\.00 credits to {%s}\\. receipt \\d+$/" % (amount, who)]


def _confirmed_buy(who, words, bought, room=None):
    """who buys with consent: BUY, the CONFIRM code, then the receipt."""
    where = " in %s" % room if room else ""
    return ["%s says `BUY %s`%s" % (who, words, where),
            "%s is told ECONSENT /To agree, reply: CONFIRM (?P<code_%s>[A-Z0-9]+) /" % (who, who),
            "%s says `CONFIRM {code_%s}`" % (who, who),
            "%s is told OK /^Bought %s.* receipt (?P<receipt_%s>\\d+)/" % (who, bought, who)]


SCENARIOS = [
    {"name": "browse: the shop lists a new item",
     "actors": {"A": "operator", "H": "host", "U": "user"}, "rooms": ["R"],
     "steps": _creator() + [
         "H says `ITEM ADD mug1 3 5 Conformance mug` in R",
         "H is told OK /^Item mug1 added\\.$/",
         "nobody else hears anything",
         "U says `SHOP`",
         "U is told OK /^mug1 - Conformance mug - 3\\.00 credits - 5 left \\(by {H}\\)$/",
         "U says `SHOP {H}`",
         "U is told OK /^mug1 - Conformance mug - 3\\.00 credits - 5 left/",
     ]},
    {"name": "a consented buy with a receipt that verifies",
     "actors": {"A": "operator", "H": "host", "U": "user"}, "rooms": ["R"],
     "steps": _creator() + [
         "H says `ITEM ADD tee2 5 10 Conformance tee` in R",
         "H is told OK /^Item tee2 added\\.$/",
     ] + _grant("U", 20) + [
         "U says `BUY tee2`",
         "U is told ECONSENT /^First purchase: 1x Conformance tee costs 5\\.00 credits.*?CONFIRM (?P<code>[A-Z0-9]+) /",
         "nobody else hears anything",
         "U says `CONFIRM {code}`",
         "U is told OK /^Bought 1x Conformance tee \\(tee2\\) for 5\\.00 credits\\. receipt (?P<receipt>\\d+)/",
         "nobody else hears anything",
         "U says `WALLET`",
         "U is told OK /^Wallet {U}: balance 15\\.00 credits available/",
         "U says `VERIFY {receipt}`",
         "U is told OK /^receipt {receipt}: VALID/",
         "nobody else hears anything",
     ]},
    {"name": "a refusal: not enough credits charges nothing",
     "actors": {"A": "operator", "H": "host", "U": "user"}, "rooms": ["R"],
     "steps": _creator() + [
         "H says `ITEM ADD cheap3 1 10 Sticker` in R",
         "H is told OK /^Item cheap3 added\\.$/",
         "H says `ITEM ADD dear3 50 10 Jacket` in R",
         "H is told OK /^Item dear3 added\\.$/",
     ] + _grant("U", 2) + _confirmed_buy("U", "cheap3", "1x Sticker") + [
         "U says `BUY dear3`",
         "U is told ENO_FUNDS",
         "nobody else hears anything",
         "U says `WALLET`",
         "U is told OK /^Wallet {U}: balance 1\\.00 credits available, 0\\.00 credits pending/",
     ]},
    {"name": "sold out: two buyers race for a one-unit drop",
     "actors": {"A": "operator", "H": "host", "U": "user", "V": "user"}, "rooms": ["R"],
     "steps": _creator() + _grant("U", 10) + _grant("V", 10) + [
         "H says `ITEM ADD warm4 1 10 Warm-up pin` in R",
         "H is told OK /^Item warm4 added\\.$/",
     ] + _confirmed_buy("U", "warm4", "1x Warm-up pin") + _confirmed_buy("V", "warm4", "1x Warm-up pin") + [
         "U joins R", "V joins R",
         "H says `DROP CREATE one4 1 2` in R",
         "H is told OK /^Drop one4 created\\.$/",
         "R hears /^LIVE NOW: drop one4 - 1 units at 2\\.00 credits/",
         "nobody else hears anything",
         "U, V say `BUY one4` in R",
         "one of U, V is told in R OK /^Bought 1x drop one4 \\(one4\\) for 2\\.00 credits\\. receipt \\d+/",
         "the other is told in R ESOLD_OUT /^sold out$/",
         "R hears /^SOLD OUT: one4 - all 1 units are gone\\.$/",
         "nobody else hears anything",
         "U, V say `BUY one4`",
         "U is told ESOLD_OUT",
         "V is told ESOLD_OUT",
         "nobody else hears anything",
     ]},
    {"name": "a drop announcement: announced, opens and closes by itself",
     "actors": {"A": "operator", "H": "host", "U": "user"}, "rooms": ["R"],
     "steps": _creator() + _grant("U", 10) + [
         "U joins R",
         "H says `ITEM ADD warm5 1 10 Warm-up badge` in R",
         "H is told OK /^Item warm5 added\\.$/",
     ] + _confirmed_buy("U", "warm5", "1x Warm-up badge") + [
         "H says `DROP CREATE pin5 3 1 start=+3s for=6s` in R",
         "H is told OK /^Drop pin5 created\\.$/",
         "R hears /^Drop coming: pin5 - 3 units at 1\\.00 credits, starts in 3 s\\.$/",
         "U says `BUY pin5` in R",
         "U is told in R EDROP_NOT_LIVE /^that drop has not started yet$/",
         "wait 3 s",
         "R hears /^LIVE NOW: drop pin5 - 3 units at 1\\.00 credits for 6 s/",
         "U says `BUY pin5` in R",
         "U is told in R OK /^Bought 1x drop pin5 \\(pin5\\) for 1\\.00 credits\\. receipt \\d+/",
         "wait 5 s",
         "R hears /^Drop pin5 closed: 1 of 3 sold\\.$/",
         "nobody else hears anything",
         "U says `BUY pin5` in R",
         "U is told in R EDROP_CLOSED /^that drop has closed$/",
     ]},
    {"name": "presence: an attendees-only drop refuses an absent buyer, sells once present",
     "actors": {"A": "operator", "H": "host", "U": "user", "V": "user"}, "rooms": ["R"],
     "steps": _creator() + _grant("U", 10) + _grant("V", 10) + [
         "U joins R",
         "H says `EVENT START 30 Conformance night` in R",
         "H is told OK /^Event started \\(id \\d+\\)\\.$/",
         "R hears /^Live event \"Conformance night\" starts now, for 30 min\\./",
         "H says `DROP CREATE vip6 5 1 attendees-only` in R",
         "H is told OK /^Drop vip6 created\\.$/",
         "R hears /^LIVE NOW: drop vip6/",
         "V says `BUY vip6`",
         "V is told ECONSENT /CONFIRM (?P<code>[A-Z0-9]+) /",
         "V says `CONFIRM {code}`",
         "V is told ENOT_ATTENDEE /^only for those attending the event/",
         "nobody else hears anything",
         "V joins R",
     ] + _confirmed_buy("V", "vip6", "1x drop vip6 \\(vip6\\)") + [
         # U was in R before the event started: counted from the roster.
     ] + _confirmed_buy("U", "vip6", "1x drop vip6 \\(vip6\\)", "R") + [
         "U leaves R",
         "H says `EVENT STOP` in R",
         "H is told OK /^Event stopped\\.$/",
         "R hears /^Attendance: 3 attendees, /",
     ]},
    # tip_message_hold is 5 s on every driver (driver.TIP_HOLD_S).
    {"name": "moderation: a tip's message goes to the room's moderators first",
     "actors": {"A": "operator", "H": "host", "U": "user", "V": "user"}, "rooms": ["R"],
     "steps": _grant("U", 10) + [
         "H says `WALLET`", "H is told OK /^Wallet {H}: /",  # the engine knows H's account
         "H joins R", "U joins R", "V joins R",
         "U says `TIP {H} 1 great set` in R",
         "U is told in R OK /^Tipped 1\\.00 credits to {H}\\. receipt (?P<kept>\\d+) - your message is shown after/",
         "R hears /^Thank you {U} for tipping {H} 1\\.00 credits! Their message follows in 5 s\\.$/",
         "R's moderators hear /^Tip {kept} from {U} to {H} says: great set -- shown here in 5 s unless/",
         "nobody else hears anything",
         "R hears /^{U}'s message with the tip of 1\\.00 credits to {H}: great set$/",
         "U says `TIP {H} 1 rude thing` in R",
         "U is told in R OK /^Tipped 1\\.00 credits to {H}\\. receipt (?P<hidden>\\d+)/",
         "R hears /^Thank you {U} for tipping {H} 1\\.00 credits!/",
         "R's moderators hear /^Tip {hidden} from {U} to {H} says: rude thing/",
         "H says `HIDE {hidden}` in R",
         "H is told in R OK /^The message of tip {hidden} is hidden; the tip stands\\.$/",
         "R's moderators hear /^{H} hid the message of tip {hidden} from {U}$/",
         "wait 6 s",
         "nobody else hears anything",
     ]},
    {"name": "a hint: not logged in is told how to log in",
     "actors": {"H": "host", "N": "anon"}, "rooms": ["R"],
     "steps": [
         "H joins R", "N joins R",
         "N says `BUY anything7` in R",
         "N is told in R ENOT_LOGGED_IN hint LOG_IN /^not logged in: log in to your account first$/",
         "nobody else hears anything",
         "N says `WALLET`",
         "N is told ENOT_LOGGED_IN hint LOG_IN",
         "nobody else hears anything",
     ]},
    {"name": "a hint: a private-only command said in a room",
     "actors": {"U": "user", "V": "user"}, "rooms": ["R"],
     "steps": [
         "U joins R", "V joins R",
         "U says `DELIVERY 1001` in R",
         "U is told in R EBAD_SYNTAX hint SEND_PRIVATELY /privately/",
         "nobody else hears anything",
     ]},
    {"name": "a hint: a host's command from someone without the host role",
     "actors": {"H": "host", "U": "user"}, "rooms": ["R"],
     "steps": [
         "H joins R", "U joins R",
         "U says `EVENT START 10 Not mine` in R",
         "U is told in R ENO_PERMISSION hint HOST_ROLE /^no permission: /",
         "nobody else hears anything",
         "U says `TALLY STATS`",
         "U is told ENO_PERMISSION hint ADMIN_ROLE /^no permission: admins only/",
     ]},
    {"name": "an unknown command",
     "actors": {"U": "user"},
     "steps": [
         "U says `FROBNICATE now`",
         "U is told EUNKNOWN_CMD /(?i)^unknown command/",
         "nobody else hears anything",
     ]},
    {"name": "invalid input is refused with its reason",
     "actors": {"A": "operator", "H": "host", "U": "user"}, "rooms": ["R"],
     "steps": _creator() + [
         "H says `ITEM ADD cap11 2 5 Cap` in R",
         "H is told OK /^Item cap11 added\\.$/",
         "U says `BUY`",
         "U is told EBAD_SYNTAX /^wrong arguments\\. Usage: BUY <sku>/",
         "U says `BUY cap11 0`",
         "U is told EBAD_QTY",
         "U says `TIP {H} -5`",
         "U is told EBAD_AMOUNT",
         "U says `BUY nosuch11`",
         "U is told EUNKNOWN_ITEM",
         "U says `VERIFY 99999999`",
         "U is told EUNKNOWN_RECEIPT /^receipt 99999999: not in the ledger/",
         "nobody else hears anything",
     ]},
    # Issue 14: the way a host whose room shows every line (a Matrix AS, an
    # XMPP component) runs a quiz: started privately naming the room, answered
    # privately; the room hears the question and the result only. The same on
    # every host. (Accounts are new here: reward_min_account_age makes it "no
    # winner", which every driver shows alike.)
    {"name": "quiz: started privately naming its room, answered privately",
     "actors": {"H": "host", "U": "user", "V": "user"}, "rooms": ["R"],
     "steps": [
         "H joins R", "U joins R", "V joins R",
         "H says `EVENT START 30 Conformance quiz` in R",
         "H is told OK /^Event started \\(id \\d+\\)\\.$/",
         "R hears /^Live event \"Conformance quiz\" starts now/",
         "U says `QUIZ START {R} 5 Two plus two? | 4`",
         "U is told ENO_PERMISSION hint HOST_ROLE /^no permission: /",
         "H says `QUIZ START {R} 5 Two plus two? | 4 | four min-players=2`",
         "H is told OK /^Quiz started for 5 s/",
         "R hears /^QUIZ \\(5 s\\): Two plus two\\? - answer privately: ANSWER <text>\\./",
         "U says `ANSWER four`",
         "U is told OK /^Right! Your answer is in \\(number 1 by arrival\\)/",
         "V says `ANSWER 5`",
         "V is told OK /^Not right/",
         "wait 4 s",
         "R hears /^Quiz over: the answer was 4\\. 2 answered; no winner\\.$/",
     ]},
    # Issue 14: a community goal, the same on every host: the room's tips fill
    # the level; everyone present then (not the host) earns the reward once.
    {"name": "goal: the room's tips fill a level and everyone present earns the reward",
     "actors": {"A": "operator", "H": "host", "U": "user", "V": "user"}, "rooms": ["R"],
     "steps": _creator() + _grant("U", 10) + [
         "H says `REWARD ADD gl9 discount=1.00 for=1h`",
         "H is told OK /^Reward gl9 saved: 1\\.00 credits off/",
         "H says `EVENT START 30 Conformance goal` in R",
         "H is told OK /^Event started \\(id \\d+\\)\\.$/",
         "R hears /^Live event \"Conformance goal\" starts now/",
         "U joins R", "V joins R",
         "H says `GOAL START 3 reward=gl9` in R",
         "H is told OK /^Goal started: 1 level, level 1 is 3\\.00 credits/",
         "R hears /^GOAL: tips and purchases here fill 3\\.00 credits within 30 min; at 100 % everyone present earns the reward gl9/",
         "U says `TIP {H} 1` in R",
         "U is told in R OK /^Tipped 1\\.00 credits to {H}\\. receipt \\d+/",
         "R hears /^Goal level 1: 25 % - 1\\.00 credits of 3\\.00 credits\\.$/",
         "U says `TIP {H} 2` in R",
         "U is told in R OK /^Tipped 2\\.00 credits to {H}\\. receipt \\d+/",
         "R hears /^GOAL level 1 reached: 3\\.00 credits of 3\\.00 credits from 1 contributor! 2 present earn gl9/",
         "wait 2 s",
         "V says `REWARDS`",
         "V is told OK /gl9 from {H}/",
         "H says `REWARDS`",
         "H is told OK /^You have no earned rewards right now/",
     ]},
]

# Each with one wrong expectation (at fails_at) and a short deadline.
NEGATIVE = [
    {"name": "a wrong text", "fails_at": 2, "deadline": 2,
     "actors": {"U": "user"},
     "steps": ["U says `WALLET`", "U is told OK /^Wallet {U}: balance 9\\.00/"]},
    {"name": "a wrong code (its default text)", "fails_at": 2, "deadline": 2,
     "actors": {"U": "user"},
     "steps": ["U says `BUY nosuch91`", "U is told ESOLD_OUT"]},
    {"name": "a hint that is missing from the expectation", "fails_at": 2, "deadline": 2,
     "actors": {"N": "anon"},
     "steps": ["N says `WALLET`", "N is told ENOT_LOGGED_IN"]},
    {"name": "a wrong hint", "fails_at": 2, "deadline": 2,
     "actors": {"N": "anon"},
     "steps": ["N says `WALLET`", "N is told ENOT_LOGGED_IN hint SEND_PRIVATELY"]},
    {"name": "a private answer expected as an answer in the room", "fails_at": 3, "deadline": 2,
     "actors": {"U": "user"}, "rooms": ["R"],
     "steps": ["U joins R", "U says `WALLET`", "U is told in R OK /^Wallet/"]},
    {"name": "an answer expected by the wrong actor", "fails_at": 2, "deadline": 2,
     "actors": {"U": "user", "V": "user"},
     "steps": ["U says `WALLET`", "V is told OK /^Wallet/"]},
    {"name": "a line to the moderators expected in the room", "fails_at": 8, "deadline": 2,
     "actors": {"A": "operator", "H": "host", "U": "user"}, "rooms": ["R"],
     "steps": _grant("U", 10) + ["H says `WALLET`", "H is told OK /^Wallet/", "H joins R", "U joins R",
                                 "U says `TIP {H} 1 hello` in R",
                                 "R hears /^Tip \\d+ from {U} to {H} says: hello/"]},
    {"name": "a wrong line in the room", "fails_at": 5, "deadline": 2,
     "actors": {"A": "operator", "H": "host"}, "rooms": ["R"],
     "steps": _creator() + ["H says `DROP CREATE neg96 2 1` in R", "R hears /^SOLD OUT/"]},
    {"name": "silence expected when the room heard something", "fails_at": 6, "deadline": 2,
     "actors": {"A": "operator", "H": "host"}, "rooms": ["R"],
     "steps": _creator() + ["H says `DROP CREATE neg97 2 1` in R", "H is told OK /^Drop neg97 created\\.$/",
                            "nobody else hears anything"]},
    # On IRC an unknown !word is chat that the room hears (the module takes
    # only tally's words); the engine itself answers it privately. Either
    # way the silence check sees it: on IRC it proves a leaked line is heard.
    {"name": "silence expected after a line the room or the sender got an answer to", "fails_at": 4,
     "deadline": 2, "actors": {"U": "user", "V": "user"}, "rooms": ["R"],
     "steps": ["U joins R", "V joins R", "U says `FROBNICATE` in R", "nobody else hears anything"]},
    {"name": "a wrong answer expected for the other racer", "fails_at": 12, "deadline": 2,
     "actors": {"A": "operator", "H": "host", "U": "user", "V": "user"}, "rooms": ["R"],
     "steps": _creator() + _grant("U", 10) + _grant("V", 10) + [
         "H says `DROP CREATE neg99 1 1` in R", "H is told OK /^Drop neg99 created\\.$/",
         "U, V say `BUY neg99`",
         "one of U, V is told ECONSENT /CONFIRM/",
         "the other is told ECONSENT /^Bought/",
     ]},
]
