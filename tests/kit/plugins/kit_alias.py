"""A FrameX-kit-shaped plugin: a model with field aliases, served over HTTP and as a function API."""

from pydantic import BaseModel, ConfigDict, Field

from framex.consts import VERSION
from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request
from framex.plugin.model import ApiType

__plugin_meta__ = PluginMetadata(
    name="kit_alias",
    version=VERSION,
    description="Answers with a model whose fields have aliases.",
    author="tests",
    url="https://example.invalid/kit_alias",
    required_remote_apis=[],
)


class Account(BaseModel):
    account_id: int = Field(..., alias="aid")
    account_name: str = Field(..., alias="aname")
    level: int = Field(0)

    model_config = ConfigDict(populate_by_name=True)


@on_register()
class AccountPlugin(BasePlugin):
    @on_request("/kit/account", call_type=ApiType.ALL)
    async def get_account(self) -> Account:
        return Account(account_id=7, account_name="kit", level=3)
