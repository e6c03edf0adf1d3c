"""Tables, figures and the rendered study."""
