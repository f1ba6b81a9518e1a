"""How long a probe waits for an answer: learnt from the round trips the scan measures, as
nmap does, instead of one fixed timeout.

A fixed timeout has to suit the slowest network the appliance may meet, so on a LAN every
silent port (a firewall that drops) costs that whole second. The answers the scan does get say
how far away the targets are: a smoothed round trip plus four times its mean deviation (the
estimator of TCP's own retransmission timer, RFC 6298, which nmap's ``adjust_timeouts2``
follows) is a wait an answer almost never outlasts. The bounds keep one odd sample from making
it absurd: a floor for the jitter of a busy machine, a ceiling the admin sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FLOOR_S = 0.1
"""nmap -T4's --min-rtt-timeout: below this, a busy appliance's own scheduling delays would
pass for silence."""

FIRST_DEVIATION_S = 0.005
"""The mean deviation assumed after one sample (nmap's 5 ms): one round trip says nothing
about jitter, and a deviation of zero would make the first timeout the round trip itself."""


@dataclass(slots=True)
class ProbeTimeout:
    """The current wait for one probe's answer, in seconds (``current``), always within
    [minimum, maximum]. Starts at ``initial``; each answered probe's round trip moves it."""

    minimum: float
    maximum: float
    initial: float
    current: float = field(init=False)
    _smoothed: float = field(init=False, default=-1.0)  # < 0: no sample yet
    _deviation: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if not 0 < self.minimum <= self.initial <= self.maximum:
            raise ValueError(
                f"probe timeouts need 0 < minimum <= initial <= maximum, got "
                f"{self.minimum}, {self.initial}, {self.maximum}"
            )
        self.current = self.initial

    @classmethod
    def up_to(cls, longest: float) -> ProbeTimeout:
        """The admin's probe timeout as the ceiling; nmap -T4's proportions below it (it
        starts at 0.5 s of a 1.25 s ceiling: half), and its 0.1 s floor unless the ceiling is
        lower still."""
        floor = min(FLOOR_S, longest)
        return cls(minimum=floor, maximum=longest, initial=max(floor, longest / 2))

    def observe(self, rtt: float) -> None:
        """One answered probe's round trip, in seconds. Gains of 1/8 and 1/4, as TCP's: a
        run of slow answers moves the timeout within a few samples, one stray sample hardly."""
        if self._smoothed < 0:
            self._smoothed = rtt
            self._deviation = max(FIRST_DEVIATION_S, rtt)
        else:
            delta = rtt - self._smoothed
            self._smoothed += delta / 8
            self._deviation += (abs(delta) - self._deviation) / 4
        wait = self._smoothed + 4 * self._deviation
        self.current = min(self.maximum, max(self.minimum, wait))

    def retry(self) -> float:
        """The wait for a second try: twice the first, as TCP backs off, so a host slower than
        the rest (a phone asleep on Wi-Fi) still gets its answer in."""
        return min(self.maximum, 2 * self.current)
