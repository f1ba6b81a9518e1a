"""numpy's BLAS on one thread, set before numpy is first imported.

The appliance's matrices are small (the router's type head: a thousand phrases by 384 by a
handful of types) and its cores have better uses. OpenBLAS's worker threads spin while they
wait: on a loaded two-core host they made the head's fit 8x slower (7.4 s against 0.9 s), and
under QEMU, where spinning is emulated too, the image build's router-cache step ran for more
than half an hour. An operator may still ask for more threads through the environment.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
