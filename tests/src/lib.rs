//! The integration suite lives in it/.
