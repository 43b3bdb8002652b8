"""The web app (`emotionnet app`): Streamlit page in `streamlit_app.py`, the work in `analysis.py`."""
