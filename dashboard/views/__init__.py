"""The dashboard's pages, one module each (run by app.py's st.navigation)."""
