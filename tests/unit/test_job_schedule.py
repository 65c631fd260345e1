"""The cron lines of the workers' periodic jobs (webhook sending, webhook sweep)."""

from __future__ import annotations

from croniter import croniter

from imagegate.queue.jobs import every


def test_every_fires_about_that_often_and_at_least_a_second_apart() -> None:
    assert every(1.0) == every(0.3) == "* * * * * */1"
    assert every(30) == "* * * * * */30"
    assert every(300) == "*/5 * * * *"
    assert every(10**6) == "*/59 * * * *"
    for seconds in (0.3, 1, 7, 30, 59.4, 60, 300):
        assert croniter.is_valid(every(seconds))
