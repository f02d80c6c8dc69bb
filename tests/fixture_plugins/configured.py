"""A plugin with a typed config."""

from pydantic import BaseModel

from framex.plugin import BasePlugin, PluginMetadata, get_plugin_config, on_register, on_request


class Settings(BaseModel):
    limit: int = 5
    label: str = "default"


__plugin_meta__ = PluginMetadata(name="configured", config_class=Settings)


@on_register()
class ConfiguredPlugin(BasePlugin):
    @on_request("/configured/show")
    async def show(self) -> dict[str, object]:
        looked_up = get_plugin_config("configured", Settings)
        return {"limit": self.config.limit, "label": self.config.label, "same": looked_up == self.config}
