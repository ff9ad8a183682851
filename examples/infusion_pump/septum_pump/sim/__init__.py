"""Hardware simulator of the reference pump (the physical world, not a partition).

``Simulator`` is a ``septum.runtime.devices.HardwareProvider``: the supervisor attaches the hardware end of
every device link to it (motor, sensors, keypad, display, pca_button). It integrates motor delivery over
device time, pushes sensor frames, lets a person or a test press keys and the PCA button, shows the
display, and injects faults. ``snapshot()`` is the single view of its state (the front panel uses it).
"""

from .physics import Fault, PumpPhysics
from .simulator import MotorChange, Simulator

__all__ = ["Fault", "MotorChange", "PumpPhysics", "Simulator"]
