mod api;
mod examples;
mod lexing;
mod limits;
mod props;
