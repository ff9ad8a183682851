"""Therapy and safety logic of the reference PCA / infusion pump.

Everything here is plain, deterministic Python: the current time is always an argument (seconds on a
monotonic clock, as a float), nothing reads a clock, starts a thread or does I/O other than parsing the
drug library bytes it is given. That keeps dose windows, lockouts and alarm timers testable in
microseconds, and lets the pump_control and safety_monitor partitions call it directly.

Modules:
  units         dose units, concentrations and the conversions between them
  limits        soft/hard limit ranges and "most restrictive wins"
  drug_library  the drug library (DERS): strict loading from bytes, per-drug and per-care-area limits
  program       validation of a programming request against the library and the requester's authority
  ledger        record of what was delivered and when, for sliding dose windows
  pca           patient-controlled analgesia rules: lockout, bolus count, 1 h / 4 h windows, KVO at a limit
  alarms        alarm conditions, priorities, latching and silence
  state_machine the controller (pump_control): infusion states and the wanted rate per control period
  monitor       the safety monitor (safety_monitor): its own independent decision per control period
"""
