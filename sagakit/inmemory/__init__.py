"""Run sagas with no server: the backend users unit-test their sagas with.

`InMemoryExecutor` runs the same saga functions as `sagakit.temporal`, with
retries on a virtual clock, enforced timeouts, fault injection and a record
of every attempt.
"""

from sagakit.inmemory._clock import VirtualClock
from sagakit.inmemory._executor import Attempt, InMemoryExecutor
from sagakit.inmemory._faults import ALWAYS, Fault, InjectedFault

__all__ = ["ALWAYS", "Attempt", "Fault", "InMemoryExecutor", "InjectedFault", "VirtualClock"]
