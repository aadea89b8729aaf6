"""When AWS Lambda's managed runtimes reach end of support (deprecation).

From the deprecation table in the Lambda developer guide ("Lambda runtimes"), as published in July 2026. After its
date a runtime gets no security patches; a few months later Lambda blocks creating and then updating functions on
it. Dates still in the future are listed too, so the policy starts failing on the day AWS deprecates a runtime
without anyone editing this file. A runtime missing here (one released after this table) is taken as supported:
Lambda itself rejects identifiers it does not know.
"""

from __future__ import annotations

from datetime import date

END_OF_SUPPORT: dict[str, date] = {
    # Python
    "python2.7": date(2021, 7, 15),
    "python3.6": date(2022, 7, 18),
    "python3.7": date(2023, 12, 4),
    "python3.8": date(2024, 10, 14),
    "python3.9": date(2025, 12, 15),
    "python3.10": date(2026, 10, 31),
    "python3.11": date(2027, 6, 30),
    "python3.12": date(2028, 10, 31),
    "python3.13": date(2029, 6, 30),
    "python3.14": date(2029, 6, 30),
    # Node.js
    "nodejs": date(2016, 8, 30),
    "nodejs4.3": date(2020, 3, 5),
    "nodejs4.3-edge": date(2020, 3, 5),
    "nodejs6.10": date(2019, 8, 12),
    "nodejs8.10": date(2020, 3, 6),
    "nodejs10.x": date(2021, 7, 30),
    "nodejs12.x": date(2023, 3, 31),
    "nodejs14.x": date(2023, 12, 4),
    "nodejs16.x": date(2024, 6, 12),
    "nodejs18.x": date(2025, 9, 1),
    "nodejs20.x": date(2026, 4, 30),
    "nodejs22.x": date(2027, 4, 30),
    "nodejs24.x": date(2028, 4, 30),
    # Java
    "java8": date(2024, 1, 8),
    "java8.al2": date(2027, 6, 30),
    "java11": date(2027, 6, 30),
    "java17": date(2027, 6, 30),
    "java21": date(2029, 6, 30),
    "java25": date(2029, 6, 30),
    # .NET
    "dotnetcore1.0": date(2019, 6, 27),
    "dotnetcore2.0": date(2019, 5, 30),
    "dotnetcore2.1": date(2022, 1, 5),
    "dotnetcore3.1": date(2023, 4, 3),
    "dotnet5.0": date(2022, 5, 10),
    "dotnet6": date(2024, 12, 20),
    "dotnet7": date(2024, 5, 14),
    "dotnet8": date(2026, 11, 10),
    "dotnet9": date(2026, 11, 10),
    "dotnet10": date(2028, 11, 14),
    # Ruby
    "ruby2.5": date(2021, 7, 30),
    "ruby2.7": date(2023, 12, 7),
    "ruby3.2": date(2026, 3, 31),
    "ruby3.3": date(2027, 3, 31),
    "ruby3.4": date(2028, 3, 31),
    "ruby4.0": date(2029, 3, 31),
    # Go and custom runtimes
    "go1.x": date(2024, 1, 8),
    "provided": date(2024, 1, 8),
    "provided.al2": date(2026, 7, 31),
    "provided.al2023": date(2029, 6, 30),
}


def end_of_support(runtime: str) -> date | None:
    """The day `runtime` is (or was) deprecated, or None when this table does not know it."""
    return END_OF_SUPPORT.get(runtime)


def is_deprecated(runtime: str, today: date) -> bool:
    """Whether `runtime` has reached end of support on `today`."""
    deprecated_on = end_of_support(runtime)
    return deprecated_on is not None and deprecated_on <= today


def supported(family: str, today: date) -> list[str]:
    """The runtimes of a family (`python`, `nodejs`, ...) still supported on `today`, oldest deprecation first."""
    candidates = [
        (deprecated_on, runtime)
        for runtime, deprecated_on in END_OF_SUPPORT.items()
        if runtime.startswith(family) and deprecated_on > today
    ]
    return [runtime for _, runtime in sorted(candidates)]
