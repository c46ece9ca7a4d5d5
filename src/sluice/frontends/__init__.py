"""Front ends: what clients call. Each is a wire codec plus error rendering."""
