"""Reverse-mode automatic differentiation on scalars: the idea in its smallest form.

Every operation on a ``Value`` builds a new node that remembers its inputs and a closure
``_backward`` that turns the node's gradient into its inputs' gradients (one step of the chain
rule). ``backward()`` sorts the graph topologically and runs those closures from the output
back, so a node's gradient is complete before it is passed on. Gradients ACCUMULATE (``+=``):
a value used twice receives the sum of both contributions.

The array engine (``airoad.neural.autograd_engine.Tensor``) reuses ``topological_order``.
"""

from __future__ import annotations

import math


def topological_order(root) -> list:
    """Nodes reachable from `root` (via `_prev`), each listed after all of its inputs."""
    order, seen = [], set()
    stack = [(root, False)]
    while (
        stack
    ):  # iterative DFS: a deep graph (a long training loop) must not hit the recursion limit
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in node._prev if id(child) not in seen)
    return order


class Value:
    """One scalar in a computation graph: ``data`` (float), ``grad`` (d output / d this)."""

    def __init__(self, data: float, _prev: tuple = (), _op: str = ""):
        self.data = float(data)
        self.grad = 0.0
        self._prev = _prev
        self._op = _op
        self._backward = lambda: None

    def __add__(self, other) -> Value:
        """``self + other``; d/dself = d/dother = 1."""
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other) -> Value:
        """``self * other``; d/dself = other, d/dother = self."""
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent: float) -> Value:
        """``self ** exponent`` for a constant exponent; d/dself = exponent * self**(exponent-1)."""
        out = Value(self.data**exponent, (self,), f"**{exponent}")

        def _backward():
            self.grad += exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        """``e**self``; its derivative is itself."""
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward():
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self) -> Value:
        """Natural log (self > 0); derivative 1 / self."""
        out = Value(math.log(self.data), (self,), "log")

        def _backward():
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        """``tanh(self)``; derivative 1 - tanh**2."""
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward():
            self.grad += (1.0 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def relu(self) -> Value:
        """``max(self, 0)``; derivative 1 where self > 0, else 0."""
        out = Value(max(self.data, 0.0), (self,), "relu")

        def _backward():
            self.grad += (self.data > 0) * out.grad

        out._backward = _backward
        return out

    def backward(self) -> None:
        """Set this node's grad to 1 and push gradients to every node it depends on."""
        self.grad = 1.0
        for node in reversed(topological_order(self)):
            node._backward()

    # Everything else is made of the operations above, so it needs no backward of its own.
    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other) -> Value:
        return self + (-other)

    def __truediv__(self, other) -> Value:
        return self * (other if isinstance(other, Value) else Value(other)) ** -1.0

    __radd__ = __add__  # a + b == b + a, so the reflected forms are the same functions
    __rmul__ = __mul__

    def __rsub__(self, other) -> Value:
        return Value(other) - self

    def __rtruediv__(self, other) -> Value:
        return Value(other) / self
