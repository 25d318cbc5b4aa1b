//! heatbill
