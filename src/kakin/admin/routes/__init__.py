"""The admin API's routes, one router per area, each built around an :class:`AdminContext`."""
