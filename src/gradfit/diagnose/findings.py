"""What a diagnosis reports: findings with a severity, and the exit code they add up to."""

from __future__ import annotations

from dataclasses import dataclass, field

OK, WARNING, CRITICAL = 0, 3, 4
LABEL = {OK: "ok", WARNING: "warning", CRITICAL: "CRITICAL"}


@dataclass(frozen=True)
class Finding:
    check: str  # gradient, nonfinite, identification, noise, components
    severity: int  # OK (information), WARNING or CRITICAL
    message: str  # one line, says what to do where something is wrong
    details: dict = field(default_factory=dict)  # JSON-able specifics


@dataclass(frozen=True)
class Diagnosis:
    model: str
    at: str  # "start" or the run folder
    loglikelihood: float
    findings: tuple[Finding, ...]
    gradient: list[dict]  # per parameter: name, autodiff, finite_difference, abs_error, rel_error, tolerance, flagged
    components: list[dict]  # per component: name, posterior_mean, marginal
    eigen: dict  # eigenvalues of -H, condition number, ...
    noise: dict  # log-likelihood over independent draw sets

    @property
    def severity(self) -> int:
        return max((f.severity for f in self.findings), default=OK)

    @property
    def exit_code(self) -> int:
        return self.severity

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "at": self.at,
            "loglikelihood": self.loglikelihood,
            "severity": LABEL[self.severity],
            "exit_code": self.exit_code,
            "findings": [f.__dict__ for f in self.findings],
            "gradient": self.gradient,
            "components": self.components,
            "eigen": self.eigen,
            "noise": self.noise,
        }
