"""The Router module: a sub-chain of modules per task ("query", "document"), as router_config.json lists them."""

from pathlib import Path

from minisbert.files.loading import ModelLoadError, read_config

__all__ = ["Router"]


class Router:
    """Sub-chains of modules chosen by task ("query", "document"), from router_config.json. ``load_module(type,
    folder, listed_in)`` loads each listed module as the family that holds the Router reads that type."""

    def __init__(self, folder, load_module):
        folder = Path(folder)
        config = read_config(folder / "router_config.json", {})
        parameters = config.get("parameters") or {}
        if parameters.get("route_mappings"):
            raise ModelLoadError(f"{folder / 'router_config.json'}: route_mappings are not supported by minisbert")
        types = config.get("types") or {}
        listed_in = folder / "router_config.json"
        self.routes = {
            route: [load_module(str(types.get(name, "")), folder / name, listed_in) for name in names]
            for route, names in (config.get("structure") or {}).items()
        }
        if not self.routes or not all(self.routes.values()):
            raise ModelLoadError(f"{folder / 'router_config.json'} has an empty route: {list(self.routes)}")
        self.default_route = parameters.get("default_route")
        if self.default_route is None and parameters.get("allow_empty_key", True):
            self.default_route = next(iter(self.routes))

    @classmethod
    def from_folder(cls, folder, load_module):
        return cls(folder, load_module)

    def modules_for(self, task):
        route = task if task in self.routes else None
        if task is not None and route is None:
            raise ValueError(f"no route for task {task!r}; the model's routes are {list(self.routes)}")
        route = route or self.default_route
        if route is None:
            raise ValueError(f"no task given and the Router has no default route; routes: {list(self.routes)}")
        return self.routes[route]
