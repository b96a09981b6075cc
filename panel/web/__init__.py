"""The served apps (`panel serve`: pages and votes) and the guards every request to them passes."""
