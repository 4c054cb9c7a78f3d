"""The optional fields sent with an image (age, sex, body site, symptoms), shared by the API and pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form

from dermlens.api.errors import ClientError
from dermlens.data.metadata import SITES
from dermlens.inference.assessment import PatientDetails, Sex


def patient_details(
    age: Annotated[int | None, Form(ge=0, le=120, description="Age in years.")] = None,
    sex: Annotated[Sex | None, Form(description="female or male.")] = None,
    site: Annotated[str | None, Form(max_length=40, description="Body site: " + ", ".join(SITES) + ".")] = None,
    itching: Annotated[bool, Form(description="The lesion itches or feels different.")] = False,
    bleeding: Annotated[bool, Form(description="The lesion bleeds or oozes.")] = False,
    growth: Annotated[bool, Form(description="The lesion has grown.")] = False,
    change: Annotated[bool, Form(description="The lesion has changed shape or colour.")] = False,
) -> PatientDetails:
    if site and site not in SITES and site != "unknown":
        raise ClientError(422, "invalid_request", f"site: {site!r} is not a body site dermlens knows; use one "
                          f"of {', '.join(SITES)} (or leave it out).")
    return PatientDetails(age=age, sex=sex, site=site or None, itching=itching, bleeding=bleeding,
                          growth=growth, change=change)
