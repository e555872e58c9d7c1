"""symnn — exact symbolic derivatives of neural networks, printed and compiled."""
from symnn.declare.activations import Activation
from symnn.declare.layers import Dense, Softmax
from symnn.declare.losses import L1, L2
from symnn.declare.model import Model
from symnn.declare.network import Network, mlp
from symnn.errors import *  # noqa: F401,F403
