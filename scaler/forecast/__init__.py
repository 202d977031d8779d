"""Demand forecasting: the pure model (model.py) and the per-series store (demand.py)."""

from scaler.forecast.model import Forecaster, ForecastState, Outlook

__all__ = ["ForecastState", "Forecaster", "Outlook"]
