//! The one integration-test binary of kaq-syntax.

mod it;
