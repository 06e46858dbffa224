r"""Activation functions g(z): the lecture's table, one small class per row.

Each class gives ``f(z)``, its derivative ``df(z)`` and the table's columns (``equation``,
``derivative``, ``monotonic``, ``identity_near_origin``, ``range``); ``backward(z, a, grad)``
returns δ = grad ⊙ g'(z). The contract is :class:`ActivationFunction` in :mod:`.base`.

==========================  ===========================================================
module                      what
==========================  ===========================================================
:mod:`.base`                the contract and the shared numerical helpers
:mod:`.registry`            :func:`register`, :func:`get`, :func:`names`, :data:`LECTURE_TABLE`
:mod:`.lecture`             the table's rows without parameters: identity … gaussian
:mod:`.soft_exponential`    the row with a parameter α (fixed or learnable)
:mod:`.softmax`             softmax, row-wise, for output layers
:mod:`.learnable`           PReLU and APL, with trainable parameters
:mod:`.table`               the table as text (fits 100 columns) or Markdown
==========================  ===========================================================

The lecture's twelve rows (:data:`LECTURE_TABLE`, in the table's order): identity, binary step,
logistic, tanh, arctan, ReLU, softplus, bent identity, SoftExponential (parameter α), sinusoid,
sinc, gaussian. Adding an activation is one class decorated with :func:`register`.
Learnable activations keep their parameters in ``params`` and the matching gradients in
``grads`` (name → array) and size them in ``build``.
"""

from thetanet.activations.base import ActivationFunction, Learnable
from thetanet.activations.learnable import APL, PReLU
from thetanet.activations.lecture import (
    SINC_MIN,
    Arctan,
    BentIdentity,
    BinaryStep,
    Gaussian,
    Identity,
    Logistic,
    ReLU,
    Sinc,
    Sinusoid,
    Softplus,
    Tanh,
)
from thetanet.activations.registry import LECTURE_TABLE, get, names, register
from thetanet.activations.soft_exponential import SoftExponential
from thetanet.activations.softmax import Softmax
from thetanet.activations.table import format_range, format_table, table_rows

__all__ = [
    "APL", "LECTURE_TABLE", "SINC_MIN", "ActivationFunction", "Arctan", "BentIdentity",
    "BinaryStep", "Gaussian", "Identity", "Learnable", "Logistic", "PReLU", "ReLU", "Sinc",
    "Sinusoid", "SoftExponential", "Softmax", "Softplus", "Tanh", "format_range",
    "format_table", "get", "names", "register", "table_rows",
]
