"""The specs the controls produce are the library's (rgdiff_core.specs); this module names them
for the UI while its imports move there."""

from rgdiff_core.specs import BasisSpec, DataSpec, PriorSpec, ProcessSpec, ScheduleSpec

__all__ = ["BasisSpec", "DataSpec", "PriorSpec", "ProcessSpec", "ScheduleSpec"]
