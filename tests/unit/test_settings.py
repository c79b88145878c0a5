"""Configuration: defaults, precedence, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from pichat_trio.settings import VARIABLES, SettingsError, example_env, load_settings

TOKEN = "x" * 20


def _load(**env: str):
    return load_settings({"API_TOKEN": TOKEN, **env}, env_file=None)


def test_defaults_need_nothing():
    settings = load_settings({}, env_file=None)
    assert settings.port == 8080 and settings.host == "127.0.0.1"
    assert settings.database_url == "sqlite:///./pichat.db"
    assert settings.ai_provider == "echo"
    assert settings.api_token_generated and len(settings.api_token) >= 16
    assert settings.model_names == ("gpt-4", "gpt-3.5")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SERVER_PORT": "eighty"}, "SERVER_PORT"),
        ({"SERVER_PORT": "70000"}, "SERVER_PORT"),
        ({"ENVIRONMENT": "staging"}, "ENVIRONMENT"),
        ({"ENVIRONMENT": "production", "API_TOKEN": ""}, "API_TOKEN"),
        ({"API_TOKEN": "short"}, "API_TOKEN"),
        ({"AI_PROVIDER": "bard"}, "AI_PROVIDER"),
        ({"AI_PROVIDER": "azure"}, "AZURE_OPENAI_ENDPOINT"),
        (
            {"AI_PROVIDER": "azure", "AZURE_OPENAI_ENDPOINT": "https://x", "AZURE_OPENAI_KEY": "k"},
            "AZURE_OPENAI_DEPLOYMENT_GPT4",
        ),
        ({"AI_PROVIDER": "openai"}, "OPENAI_BASE_URL"),
        ({"AI_MODELS": "gpt-4o"}, "AI_MODELS"),
        ({"AZURE_SPEECH_KEY": "k"}, "AZURE_SPEECH_REGION"),
        ({"HEARTBEAT_INTERVAL": "30", "HEARTBEAT_TIMEOUT": "20"}, "HEARTBEAT_TIMEOUT"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
        ({"DB_HOST": "db.example"}, "DB_USER"),
        ({"MAX_FRAME_BYTES": "-1"}, "MAX_FRAME_BYTES"),
        ({"VOICE_BARGE_IN_DBFS": "loud"}, "VOICE_BARGE_IN_DBFS"),
        ({"VOICE_BARGE_IN_DBFS": "6"}, "VOICE_BARGE_IN_DBFS"),
        ({"VOICE_BARGE_IN_MS": "0"}, "VOICE_BARGE_IN_MS"),
    ],
)
def test_a_wrong_setting_names_its_variable(env, named):
    with pytest.raises(SettingsError) as caught:
        _load(**env)
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_barge_in_level_and_time_are_settings():
    assert (_load().voice_barge_in_dbfs, _load().voice_barge_in_ms) == (-30.0, 300)
    settings = _load(VOICE_BARGE_IN_DBFS="-24.5", VOICE_BARGE_IN_MS="450")
    assert (settings.voice_barge_in_dbfs, settings.voice_barge_in_ms) == (-24.5, 450)


def test_azure_keeps_only_models_with_a_deployment():
    settings = _load(
        AI_PROVIDER="azure",
        AZURE_OPENAI_ENDPOINT="https://x.openai.azure.com/",
        AZURE_OPENAI_KEY="k",
        AZURE_OPENAI_DEPLOYMENT_GPT4="prod-gpt4",
        AI_MODELS="gpt-4o=prod-4o",
    )
    assert dict(settings.models) == {"gpt-4": "prod-gpt4", "gpt-4o": "prod-4o"}
    assert settings.azure_openai_endpoint == "https://x.openai.azure.com"


def test_the_environment_wins_over_the_env_file(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text("SERVER_PORT=9000\nLOG_LEVEL=DEBUG\n")
    settings = load_settings({"API_TOKEN": TOKEN, "SERVER_PORT": "9100"}, env_file=env_file)
    assert settings.port == 9100 and settings.log_level == "DEBUG"
    assert load_settings({"API_TOKEN": TOKEN}, env_file=env_file, port=1).port == 1


def test_every_variable_is_documented():
    root = Path(__file__).resolve().parents[2]
    example = (root / ".env.example").read_text()
    readme = (root / "README.md").read_text()
    assert example == example_env() + "\n" or example == example_env()
    for variable in VARIABLES:
        assert f"{variable.name}=" in example
        assert f"`{variable.name}`" in readme, variable.name


def test_the_readme_voice_table_is_the_code_s():
    from pichat_trio.voices import ACCENTS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name, accent in ACCENTS.items():
        cells = [f"`{name}`", accent.locale, accent.azure_female, accent.azure_male, accent.espeak]
        row = "| " + " | ".join(cells) + " |"
        assert row in readme, row
