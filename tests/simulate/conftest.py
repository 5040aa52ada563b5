from tests.simulate.helpers import shop

__all__ = ["shop"]
